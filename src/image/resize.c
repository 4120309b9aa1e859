/*
 * Resize(short side) + CenterCrop on 8-bit gray and RGB images, with the
 * bytes torchvision 0.14 gives on a PIL image resized by Pillow 9.4.
 *
 * Geometry: imgpack__geometry_plan repeats torchvision's integer and float
 * arithmetic (int() truncation for the long side, round-half-even for the
 * crop offset, zero padding when the crop is larger than the image).
 *
 * Pixels: Pillow resamples with a separable triangle filter whose support
 * grows with the downscale factor (antialiasing). Per axis it computes in
 * double, for each output index, the first source index, the tap count and
 * normalised weights, then rounds the weights to fixed point with 22
 * fractional bits. It runs the horizontal pass first, rounding and clipping
 * every result to 8 bits, then the vertical pass over those 8-bit rows. We
 * repeat the coefficient arithmetic expression for expression (the file is
 * built with -ffp-contract=off so no FMA changes a rounding) and the passes
 * in the same order; the sums themselves are exact integers, so they may be
 * computed in any order and vectorised freely.
 *
 * Speed comes from computing only what the crop keeps (the horizontal pass
 * for the kept columns on the source rows that the kept rows' vertical
 * supports reach, the vertical pass for the kept rows), from caching the
 * coefficient tables per (in size, out size) pair, and from AVX2 kernels
 * chosen at run time, with portable scalar code for other CPUs and for the
 * last columns of a row, where a vector load would read past its end. The
 * kernels split the 22-bit weights in two 11-bit halves so that vpmaddwd,
 * a 16-bit multiply-add, can do the work; the vertical pass uses vpmulld.
 */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RESIZE_X86 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2")))
/* For the small vector helpers, so that each caller gets a copy
   specialised for its constants. */
#define INLINE inline __attribute__((always_inline))
#endif

/* Pillow's fixed point: 22 fractional bits leave 8 bits for the sample and
   2 of headroom in a 32-bit int. */
#define PRECISION_BITS 22
#define ROUNDING (1 << (PRECISION_BITS - 1))

/* vpmaddwd multiplies 16-bit lanes, too narrow for a 22-bit weight, so the
   AVX2 kernels split w into hi = w >> 11 and lo = w & 0x7ff (a weight is at
   most 1 << 22, so hi <= 2048 and both fit int16) and compute
   (sum(p * hi) << 11) + sum(p * lo), which is sum(p * w) exactly. Vector
   adds wrap modulo 2**32 and Pillow's total fits an int32, so even a partial
   sum that wrapped (lo sums over thousands of taps) ends exact. */
#define SPLIT_BITS 11
#define SPLIT_MASK ((1 << SPLIT_BITS) - 1)

/* The AVX2 horizontal kernels take the taps four at a time (the 12 bytes of
   four RGB pixels fit one 16-byte load) and the output in blocks of
   BLOCK indexes, aligned to multiples of BLOCK so that the weights can be
   laid out per axis, whatever the crop. Weight rows are padded to TAPS. */
#define TAPS 4
#define BLOCK 8

/* Coefficient tables kept per resizer: two axes for landscape images and two
   for portrait ones, so a dataset mixing both stays in the cache. */
#define AXIS_CACHE_SIZE 4

/* One axis of the resampling, from in_size samples to out_size. */
typedef struct axis {
    uint32_t in_size, out_size; /* the cache key; out_size 0: empty slot */
    uint64_t last_used;
    uint32_t kstride; /* weights per output index, >= every count */
    int32_t *first;   /* first source index of each output index */
    int32_t *count;   /* how many source indexes it reads, >= 1 */
    int32_t *weights; /* Pillow's fixed-point weights, 0 past count */
    /* AVX2 layouts, built only when the CPU has AVX2 (see build_wide) */
    uint32_t groups;            /* steps of TAPS taps per output index */
    uint32_t gray_end, rgb_end; /* end of the blocks whose loads stay in
                                   the row, a multiple of BLOCK */
    int16_t *gray_wide, *rgb_wide;
    void *block; /* one allocation holding all the arrays above */
    size_t block_size; /* its bytes: kept when the slot is rebuilt, as
                          RandomResizedCrop boxes rebuild one per image */
} axis;

struct imgpack__resizer {
    axis cache[AXIS_CACHE_SIZE];
    uint64_t clock; /* bumped on every lookup, for LRU eviction */
    int simd;       /* use the AVX2 kernels */
    int has_avx2;
    uint8_t *band; /* horizontal pass output, input of the vertical pass */
    size_t band_size;
};

/* ---- geometry ---------------------------------------------------------- */

/* Python's int(round(d / 2.0)) for d >= 0: a half goes to the even side. */
static int64_t half_to_even(uint64_t d) {
    uint64_t k = d / 2;
    if ((d & 1) && (k & 1))
        k++;
    return (int64_t)k;
}

/* One dimension of CenterCrop: torchvision pads (crop - size) // 2 zeros
   before the image when the crop is larger, then crops at offset 0 in the
   padded image; otherwise it crops at round((size - crop) / 2). */
static void plan_crop(uint32_t size, uint32_t crop, uint32_t *out,
                      int64_t *offset) {
    if (crop == 0) {
        *out = size;
        *offset = 0;
    } else if (crop > size) {
        *out = crop;
        *offset = -(int64_t)((crop - size) / 2);
    } else {
        *out = crop;
        *offset = half_to_even(size - crop);
    }
}

void imgpack__geometry_plan(uint32_t src_width, uint32_t src_height,
                            uint32_t resize, uint32_t crop,
                            imgpack__geometry *g) {
    g->src_width = src_width;
    g->src_height = src_height;
    g->resized_width = src_width;
    g->resized_height = src_height;
    /* An empty image has no short side (torchvision divides by zero). */
    if (resize > 0 && src_width > 0 && src_height > 0) {
        int portrait = src_width <= src_height;
        uint64_t shorter = portrait ? src_width : src_height;
        uint64_t longer = portrait ? src_height : src_width;
        /* Python's int(resize * long / short): an exact product, a correctly
           rounded true division, truncation. The product converts to double
           exactly below 2**53, far beyond any image the decoder accepts. */
        double q = (double)(resize * longer) / (double)shorter;
        uint32_t new_long = q >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)q;
        g->resized_width = portrait ? resize : new_long;
        g->resized_height = portrait ? new_long : resize;
    }
    plan_crop(g->resized_width, crop, &g->out_width, &g->left);
    plan_crop(g->resized_height, crop, &g->out_height, &g->top);
}

/* ---- coefficients ------------------------------------------------------ */

static double triangle(double x) {
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

#ifdef RESIZE_X86
/*
 * Lays the weights out as the AVX2 horizontal kernels load them, split into
 * hi and lo int16 halves, per block of BLOCK output indexes and step of TAPS
 * taps. Output index k of a block is "slot" k % 4 in "half" k / 4: the
 * kernels put indexes k and k + 4 in the two 128-bit halves of a register,
 * so that packing four registers gives eight results in order.
 *  gray: two vectors (slots 0,1 and slots 2,3), each hi then lo; in a
 *        half, the 4 taps of the first slot then those of the second.
 *  RGB:  per slot, hi of taps 0,1, hi of taps 2,3, lo of taps 0,1, lo of
 *        taps 2,3; in a half, the tap pair repeated for R, G, B and a pad,
 *        matching the R0 R1 G0 G1 B0 B1 0 0 lanes the kernel shuffles into.
 * Also finds where the loads would start reading past the row; as `first`
 * never decreases, every later index is past it too.
 */
static void build_wide(axis *a) {
    const uint32_t groups = a->groups;
    const uint32_t blocks = a->out_size / BLOCK;
    uint32_t gray_end = a->out_size, rgb_end = a->out_size;

    for (uint32_t i = a->out_size; i-- > 0;) {
        uint64_t first = (uint64_t)a->first[i];
        if (first + (uint64_t)TAPS * groups > a->in_size)
            gray_end = i;
        /* The last RGB step loads 16 bytes from pixel first + 4 (g - 1). */
        if (3 * first + 12 * (uint64_t)groups + 4 > 3 * (uint64_t)a->in_size)
            rgb_end = i;
    }
    a->gray_end = gray_end / BLOCK * BLOCK;
    a->rgb_end = rgb_end / BLOCK * BLOCK;
    for (uint32_t i = 0; i < blocks * BLOCK; i++) {
        const int32_t *w = a->weights + (size_t)i * a->kstride;
        uint32_t b = i / BLOCK, k = i % BLOCK, half = k / 4, slot = k % 4;
        for (uint32_t g = 0; g < groups; g++) {
            int16_t *gv = a->gray_wide +
                          (((size_t)b * groups + g) * 4 + slot / 2 * 2) * 16;
            int16_t *rv =
                a->rgb_wide + (((size_t)b * 4 + slot) * groups + g) * 4 * 16;
            for (uint32_t t = 0; t < TAPS; t++) {
                int16_t hi = (int16_t)(w[g * TAPS + t] >> SPLIT_BITS);
                int16_t lo = (int16_t)(w[g * TAPS + t] & SPLIT_MASK);
                uint32_t at = half * 8 + slot % 2 * 4 + t;
                gv[at] = hi;
                gv[16 + at] = lo;
                for (uint32_t r = 0; r < 4; r++) {
                    at = t / 2 * 16 + half * 8 + r * 2 + t % 2;
                    rv[at] = hi;
                    rv[32 + at] = lo;
                }
            }
        }
    }
}
#endif

/* Pillow's scale for in_size -> out_size: it gets the box as floats, so the
   input extent is (float)in_size; exact below 2**24, and rounded as Pillow
   rounds it above. */
static double axis_scale(uint32_t in_size, uint32_t out_size) {
    return (double)(float)in_size / out_size;
}

/* The source samples [*xmin, *xmax) that output index i reads. */
static void source_span(uint32_t in_size, uint32_t out_size, uint32_t i,
                        int64_t *xmin, int64_t *xmax) {
    double scale = axis_scale(in_size, out_size);
    double support = scale < 1.0 ? 1.0 : scale;
    double center = (i + 0.5) * scale;
    *xmin = (int64_t)(center - support + 0.5);
    *xmax = (int64_t)(center + support + 0.5);
    if (*xmin < 0)
        *xmin = 0;
    if (*xmax > in_size)
        *xmax = in_size;
}

/*
 * Fills `a` for in_size -> out_size with Pillow's precompute_coeffs and
 * normalize_coeffs_8bpc arithmetic for the bilinear filter (support 1).
 */
static imgpack_status axis_build(axis *a, uint32_t in_size, uint32_t out_size,
                                 int wide) {
    imgpack_status st = IMGPACK_OK;
    double scale = axis_scale(in_size, out_size);
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale;
    double inv = 1.0 / filterscale;
    /* Pillow's bound on the taps of one output index. */
    uint64_t ksize = (uint64_t)ceil(support) * 2 + 1;
    uint64_t kstride = (ksize + TAPS - 1) / TAPS * TAPS;
    /* Per output index: first and count, the int32 weights, and if wide the
       gray (2 int16 per tap) and RGB (8 int16 per tap) layouts. */
    uint64_t per_index = 8 + 4 * kstride + (wide ? 20 * kstride : 0);
    size_t size;
    char *p;
    void *block = a->block;
    size_t block_size = a->block_size;

    memset(a, 0, sizeof(*a));
    if (kstride > SIZE_MAX / 64 || out_size > SIZE_MAX / per_index) {
        free(block);
        st = IMGPACK_ERR_NOMEM;
        goto done;
    }
    size = (size_t)(out_size * per_index);
    if (size > block_size) {
        free(block);
        if ((block = malloc(size)) == NULL) {
            st = IMGPACK_ERR_NOMEM;
            goto done;
        }
        block_size = size;
    }
    a->block = block;
    a->block_size = block_size;
    p = a->block;
    a->weights = (int32_t *)p;
    p += (size_t)out_size * kstride * 4;
    a->first = (int32_t *)p;
    p += (size_t)out_size * 4;
    a->count = (int32_t *)p;
    p += (size_t)out_size * 4;
    if (wide) {
        a->gray_wide = (int16_t *)p;
        p += (size_t)out_size * kstride * 4;
        a->rgb_wide = (int16_t *)p;
    }
    a->in_size = in_size;
    a->out_size = out_size;
    a->kstride = (uint32_t)kstride;
    memset(a->weights, 0, (size_t)out_size * kstride * 4);

    for (uint32_t i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        double ww = 0.0;
        int64_t xmin, xmax;
        int32_t *w = a->weights + (size_t)i * kstride;
        source_span(in_size, out_size, i, &xmin, &xmax);
        /* center < in_size and support >= 1 give xmin < xmax: count >= 1. */
        a->first[i] = (int32_t)xmin;
        a->count[i] = (int32_t)(xmax - xmin);
        /* The filter is evaluated twice rather than stored: the same
           expression yields the same double, and no scratch is needed. */
        for (int64_t x = 0; x < xmax - xmin; x++)
            ww += triangle(((double)(x + xmin) - center + 0.5) * inv);
        for (int64_t x = 0; x < xmax - xmin; x++) {
            double k = triangle(((double)(x + xmin) - center + 0.5) * inv);
            if (ww != 0.0)
                k /= ww;
            /* Triangle weights are >= 0, so only Pillow's +0.5 branch of
               its round-half-away-from-zero applies. */
            w[x] = (int32_t)(0.5 + k * (1 << PRECISION_BITS));
        }
    }
#ifdef RESIZE_X86
    if (wide) {
        uint32_t max_count = 0;
        for (uint32_t i = 0; i < out_size; i++)
            if ((uint32_t)a->count[i] > max_count)
                max_count = (uint32_t)a->count[i];
        a->groups = (max_count + TAPS - 1) / TAPS;
        build_wide(a);
    }
#endif
done:
    if (st != IMGPACK_OK)
        memset(a, 0, sizeof(*a));
    return st;
}

/* The cached table for in_size -> out_size, built on a miss into the least
   recently used slot. */
static imgpack_status axis_get(imgpack__resizer *rs, uint32_t in_size,
                               uint32_t out_size, const axis **out) {
    imgpack_status st = IMGPACK_OK;
    axis *hit = NULL;
    axis *victim = &rs->cache[0];

    for (int i = 0; i < AXIS_CACHE_SIZE; i++) {
        axis *a = &rs->cache[i];
        if (a->out_size == out_size && a->in_size == in_size && out_size > 0)
            hit = a;
        if (a->last_used < victim->last_used)
            victim = a;
    }
    if (hit == NULL) {
        st = axis_build(victim, in_size, out_size, rs->has_avx2);
        if (st != IMGPACK_OK)
            goto done;
        hit = victim;
    }
    hit->last_used = ++rs->clock;
    *out = hit;
done:
    return st;
}

/* ---- scalar kernels ---------------------------------------------------- */

/* Sums are >= 0 (weights are), so only the top needs clipping; it can reach
   256 because the rounded weights may add up to slightly more than 1. */
static uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* One row of the horizontal pass, output indexes [x0, x1), into dst. */
static void h_scalar(const axis *a, const uint8_t *row, uint32_t channels,
                     uint32_t x0, uint32_t x1, uint8_t *dst) {
    for (uint32_t i = x0; i < x1; i++) {
        const int32_t *w = a->weights + (size_t)i * a->kstride;
        const uint8_t *s = row + (size_t)a->first[i] * channels;
        int32_t n = a->count[i];
        for (uint32_t c = 0; c < channels; c++) {
            int32_t acc = ROUNDING;
            for (int32_t t = 0; t < n; t++)
                acc += s[(size_t)t * channels + c] * w[t];
            *dst++ = clip8(acc);
        }
    }
}

/* One row of the vertical pass: n source rows from src, `width` bytes. */
static void v_scalar(const uint8_t *src, size_t stride, const int32_t *w,
                     int32_t n, size_t width, uint8_t *dst) {
    for (size_t x = 0; x < width; x++) {
        int32_t acc = ROUNDING;
        for (int32_t t = 0; t < n; t++)
            acc += src[(size_t)t * stride + x] * w[t];
        dst[x] = clip8(acc);
    }
}

/* ---- AVX2 kernels ------------------------------------------------------ */

#ifdef RESIZE_X86
/* Four source bytes from each of four places, as one vector. */
AVX2_FN static __m128i load4x4(const uint8_t *a, const uint8_t *b,
                               const uint8_t *c, const uint8_t *d) {
    int32_t va, vb, vc, vd;
    memcpy(&va, a, 4);
    memcpy(&vb, b, 4);
    memcpy(&vc, c, 4);
    memcpy(&vd, d, 4);
    return _mm_unpacklo_epi64(
        _mm_unpacklo_epi32(_mm_cvtsi32_si128(va), _mm_cvtsi32_si128(vb)),
        _mm_unpacklo_epi32(_mm_cvtsi32_si128(vc), _mm_cvtsi32_si128(vd)));
}

/* Gray horizontal pass for the block at x (a multiple of BLOCK): its 8
   results in the low 8 bytes. */
AVX2_FN INLINE static __m128i gray_block(const axis *a, const uint8_t *row,
                                         uint32_t x, uint32_t groups) {
    const __m256i rounding = _mm256_set1_epi32(ROUNDING);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const int32_t *first = a->first;
    const __m256i *w =
        (const __m256i *)a->gray_wide + (size_t)(x / BLOCK) * groups * 4;
    __m256i acc_a = _mm256_setzero_si256();
    __m256i acc_b = _mm256_setzero_si256();

    for (uint32_t g = 0; g < groups; g++, w += 4) {
        const uint8_t *s = row + g * TAPS;
        /* Slots 0,1 | 4,5 and 2,3 | 6,7: after the horizontal add below
           the halves hold outputs 0-3 and 4-7. */
        __m256i pa =
            _mm256_cvtepu8_epi16(load4x4(s + first[x], s + first[x + 1],
                                         s + first[x + 4], s + first[x + 5]));
        __m256i pb =
            _mm256_cvtepu8_epi16(load4x4(s + first[x + 2], s + first[x + 3],
                                         s + first[x + 6], s + first[x + 7]));
        __m256i hi_a = _mm256_madd_epi16(pa, _mm256_loadu_si256(w));
        __m256i lo_a = _mm256_madd_epi16(pa, _mm256_loadu_si256(w + 1));
        __m256i hi_b = _mm256_madd_epi16(pb, _mm256_loadu_si256(w + 2));
        __m256i lo_b = _mm256_madd_epi16(pb, _mm256_loadu_si256(w + 3));
        acc_a = _mm256_add_epi32(
            acc_a, _mm256_add_epi32(_mm256_slli_epi32(hi_a, SPLIT_BITS), lo_a));
        acc_b = _mm256_add_epi32(
            acc_b, _mm256_add_epi32(_mm256_slli_epi32(hi_b, SPLIT_BITS), lo_b));
    }
    __m256i v = _mm256_add_epi32(_mm256_hadd_epi32(acc_a, acc_b), rounding);
    v = _mm256_srai_epi32(v, PRECISION_BITS);
    v = _mm256_packs_epi32(v, v);
    v = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(v, v), order);
    return _mm256_castsi256_si128(v);
}

/* One RGB output pixel in each half: taps from sa and sb, weights w. */
AVX2_FN INLINE static __m256i rgb_pair(const uint8_t *sa, const uint8_t *sb,
                                       const __m256i *w, uint32_t groups) {
    /* 16 loaded bytes -> 16-bit lanes R0 R1 G0 G1 B0 B1 0 0 for taps 0,1
       and for taps 2,3. */
    const __m256i taps01 = _mm256_setr_epi8(
        0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, //
        0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
    const __m256i taps23 = _mm256_setr_epi8(
        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1, //
        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
    /* Pillow's rounding term, folded into the sum from the start. */
    __m256i lo = _mm256_set1_epi32(ROUNDING);
    __m256i hi = _mm256_setzero_si256();

    for (uint32_t g = 0; g < groups; g++, w += 4) {
        __m256i p = _mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm_loadu_si128((const __m128i *)(sa + 12 * g))),
            _mm_loadu_si128((const __m128i *)(sb + 12 * g)), 1);
        __m256i p01 = _mm256_shuffle_epi8(p, taps01);
        __m256i p23 = _mm256_shuffle_epi8(p, taps23);
        hi = _mm256_add_epi32(
            hi, _mm256_add_epi32(
                    _mm256_madd_epi16(p01, _mm256_loadu_si256(w)),
                    _mm256_madd_epi16(p23, _mm256_loadu_si256(w + 1))));
        lo = _mm256_add_epi32(
            lo, _mm256_add_epi32(
                    _mm256_madd_epi16(p01, _mm256_loadu_si256(w + 2)),
                    _mm256_madd_epi16(p23, _mm256_loadu_si256(w + 3))));
    }
    return _mm256_srai_epi32(
        _mm256_add_epi32(_mm256_slli_epi32(hi, SPLIT_BITS), lo),
        PRECISION_BITS);
}

/* RGB horizontal pass for the block at x (a multiple of BLOCK): its 24
   bytes at the start of the result. */
AVX2_FN INLINE static __m256i rgb_block(const axis *a, const uint8_t *row,
                                        uint32_t x, uint32_t groups) {
    /* R G B x four times per half -> 12 bytes at the start of each half;
       then the two 12-byte runs joined. */
    const __m256i compact = _mm256_setr_epi8(
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, //
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
    const int32_t *first = a->first;
    const __m256i *w =
        (const __m256i *)a->rgb_wide + (size_t)(x / BLOCK) * 4 * groups * 4;
    __m256i q[4];

    for (uint32_t k = 0; k < 4; k++)
        q[k] = rgb_pair(row + (size_t)first[x + k] * 3,
                        row + (size_t)first[x + k + 4] * 3,
                        w + (size_t)k * groups * 4, groups);
    /* Halves hold pixels 0-3 and 4-7, each as R G B x. */
    __m256i v = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]),
                                    _mm256_packs_epi32(q[2], q[3]));
    return _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, compact), join);
}

/*
 * The horizontal pass of one row for output columns [x0, x1), x1 at most
 * the end of the safe blocks. Whole blocks are stored in place; the partial
 * ones at either end go through `part` and only their kept bytes are copied.
 * `groups` is a->groups, passed apart so that the common case of one step
 * compiles to straight-line code.
 */
AVX2_FN INLINE static void h_row_avx2(const axis *a, const uint8_t *row,
                                      uint32_t channels, uint32_t x0,
                                      uint32_t x1, uint8_t *dst,
                                      uint32_t groups) {
    uint8_t part[32];

    for (uint32_t x = x0 / BLOCK * BLOCK; x < x1; x += BLOCK) {
        uint32_t from = x < x0 ? x0 - x : 0;
        uint32_t to = x1 - x < BLOCK ? x1 - x : BLOCK;
        int whole = from == 0 && to == BLOCK;
        uint8_t *d = whole ? dst + (size_t)(x - x0) * channels : part;
        if (channels == 3) {
            __m256i v = rgb_block(a, row, x, groups);
            _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(v));
            _mm_storel_epi64((__m128i *)(d + 16),
                             _mm256_extracti128_si256(v, 1));
        } else {
            _mm_storel_epi64((__m128i *)d, gray_block(a, row, x, groups));
        }
        if (!whole)
            memcpy(dst + (size_t)(x + from - x0) * channels,
                   part + from * channels, (to - from) * channels);
    }
}

AVX2_FN static void h_rgb_avx2(const axis *a, const uint8_t *row, uint32_t x0,
                               uint32_t x1, uint8_t *dst) {
    if (a->groups == 1)
        h_row_avx2(a, row, 3, x0, x1, dst, 1);
    else
        h_row_avx2(a, row, 3, x0, x1, dst, a->groups);
}

AVX2_FN static void h_gray_avx2(const axis *a, const uint8_t *row, uint32_t x0,
                                uint32_t x1, uint8_t *dst) {
    if (a->groups == 1)
        h_row_avx2(a, row, 1, x0, x1, dst, 1);
    else
        h_row_avx2(a, row, 1, x0, x1, dst, a->groups);
}

/* 32 bytes of one vertical output row from n source rows. (vpmulld beat
   vpmaddwd on hi/lo pairs here: the pairs need six shuffles per two rows.) */
AVX2_FN static void v_chunk_avx2(const uint8_t *src, size_t stride,
                                 const int32_t *w, int32_t n, uint8_t *dst) {
    /* The packs below interleave the halves; this puts the bytes back. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i acc[4];

    for (int j = 0; j < 4; j++)
        acc[j] = _mm256_set1_epi32(ROUNDING);
    for (int32_t t = 0; t < n; t++) {
        const uint8_t *p = src + (size_t)t * stride;
        __m256i k = _mm256_set1_epi32(w[t]);
        for (int j = 0; j < 4; j++) {
            __m256i s = _mm256_cvtepu8_epi32(
                _mm_loadl_epi64((const __m128i *)(p + 8 * j)));
            acc[j] = _mm256_add_epi32(acc[j], _mm256_mullo_epi32(s, k));
        }
    }
    for (int j = 0; j < 4; j++)
        acc[j] = _mm256_srai_epi32(acc[j], PRECISION_BITS);
    /* Saturating packs clip the (non-negative) results to 255. */
    __m256i v = _mm256_packus_epi16(_mm256_packs_epi32(acc[0], acc[1]),
                                    _mm256_packs_epi32(acc[2], acc[3]));
    v = _mm256_permutevar8x32_epi32(v, order);
    _mm256_storeu_si256((__m256i *)dst, v);
}
/* A vertical output row of `width` bytes, if at least 32: the last chunk
   overlaps the one before rather than leaving a scalar tail, which is fine
   as it writes the same values. Returns how many bytes it did. */
AVX2_FN static size_t v_avx2(const uint8_t *src, size_t stride,
                             const int32_t *w, int32_t n, size_t width,
                             uint8_t *dst) {
    size_t x = 0;
    if (width >= 32) {
        for (; x + 32 <= width; x += 32)
            v_chunk_avx2(src + x, stride, w, n, dst + x);
        if (x < width)
            v_chunk_avx2(src + width - 32, stride, w, n, dst + width - 32);
        x = width;
    }
    return x;
}
#endif

/* ---- passes ------------------------------------------------------------ */

/* The horizontal pass on `rows` rows, output columns [x0, x1). */
static void horizontal_pass(const imgpack__resizer *rs, const axis *a,
                            uint32_t channels, const uint8_t *src,
                            size_t src_stride, uint32_t rows, uint32_t x0,
                            uint32_t x1, uint8_t *dst, size_t dst_stride) {
    /* The vector kernels take the columns up to the end of the blocks whose
       loads stay inside the row; the scalar code does the rest. */
    uint32_t v1 = x0;
#ifdef RESIZE_X86
    if (rs->simd && (channels == 1 || channels == 3)) {
        uint32_t end = channels == 3 ? a->rgb_end : a->gray_end;
        v1 = x1 < end ? x1 : end;
        if (v1 < x0)
            v1 = x0;
    }
#endif
    for (uint32_t y = 0; y < rows; y++) {
        const uint8_t *row = src + y * src_stride;
        uint8_t *out = dst + y * dst_stride;
#ifdef RESIZE_X86
        if (v1 > x0 && channels == 3)
            h_rgb_avx2(a, row, x0, v1, out);
        else if (v1 > x0)
            h_gray_avx2(a, row, x0, v1, out);
#endif
        h_scalar(a, row, channels, v1, x1, out + (size_t)(v1 - x0) * channels);
    }
}

/* The vertical pass for output rows [y0, y1); `src` holds source rows from
   src_row0 on, `width` bytes each. */
static void vertical_pass(const imgpack__resizer *rs, const axis *a,
                          const uint8_t *src, size_t src_stride,
                          int32_t src_row0, uint32_t y0, uint32_t y1,
                          size_t width, uint8_t *dst, size_t dst_stride) {
    for (uint32_t y = y0; y < y1; y++) {
        const uint8_t *rows =
            src + (size_t)(a->first[y] - src_row0) * src_stride;
        const int32_t *w = a->weights + (size_t)y * a->kstride;
        uint8_t *out = dst + (size_t)(y - y0) * dst_stride;
        size_t x = 0;
#ifdef RESIZE_X86
        if (rs->simd)
            x = v_avx2(rows, src_stride, w, a->count[y], width, out);
#endif
        v_scalar(rows + x, src_stride, w, a->count[y], width - x, out + x);
    }
}

/* Zeroes what CenterCrop padded: all of `out` but the kept rectangle, given
   in output bytes [kx0, kx1) and rows [ky0, ky1). */
static void zero_padding(uint8_t *out, size_t stride, size_t row_bytes,
                         uint32_t rows, size_t kx0, size_t kx1, uint32_t ky0,
                         uint32_t ky1) {
    for (uint32_t y = 0; y < rows; y++) {
        uint8_t *row = out + (size_t)y * stride;
        if (y < ky0 || y >= ky1) {
            memset(row, 0, row_bytes);
        } else {
            memset(row, 0, kx0);
            memset(row + kx1, 0, row_bytes - kx1);
        }
    }
}

imgpack_status imgpack__resizer_create(imgpack__resizer **out) {
    imgpack_status st = IMGPACK_OK;
    imgpack__resizer *rs = calloc(1, sizeof(*rs));

    if (rs == NULL) {
        st = IMGPACK_ERR_NOMEM;
        goto done;
    }
#ifdef RESIZE_X86
    rs->has_avx2 = __builtin_cpu_supports("avx2") != 0;
#endif
    rs->simd = rs->has_avx2;
    *out = rs;
done:
    return st;
}

void imgpack__resizer_destroy(imgpack__resizer *rs) {
    if (rs == NULL)
        return;
    for (int i = 0; i < AXIS_CACHE_SIZE; i++)
        free(rs->cache[i].block);
    free(rs->band);
    free(rs);
}

void imgpack__resizer_set_simd(imgpack__resizer *rs, int enable) {
    rs->simd = enable && rs->has_avx2;
}

/* The source samples [*first, *end) that one axis of the crop reads: the
   kept output samples are [offset, offset + kept) within [0, out_size). */
static void kept_source_span(uint32_t in_size, uint32_t out_size,
                             int64_t offset, uint32_t kept, uint32_t *first,
                             uint32_t *end) {
    int64_t k0 = offset > 0 ? offset : 0;
    int64_t k1 = offset + kept;
    int64_t lo, hi;
    if (k1 > out_size)
        k1 = out_size;
    if (k1 <= k0) {
        *first = *end = 0;
    } else if (out_size == in_size) {
        *first = (uint32_t)k0;
        *end = (uint32_t)k1;
    } else {
        source_span(in_size, out_size, (uint32_t)k0, &lo, &hi);
        *first = (uint32_t)lo;
        source_span(in_size, out_size, (uint32_t)(k1 - 1), &lo, &hi);
        *end = (uint32_t)hi;
    }
}

void imgpack__geometry_source_region(const imgpack__geometry *g,
                                     imgpack__region *out) {
    kept_source_span(g->src_width, g->resized_width, g->left, g->out_width,
                     &out->x0, &out->x1);
    kept_source_span(g->src_height, g->resized_height, g->top, g->out_height,
                     &out->y0, &out->y1);
    if (out->x1 == 0 || out->y1 == 0)
        *out = (imgpack__region){0, 0, 0, 0};
}

imgpack_status imgpack__resize_crop(imgpack__resizer *rs,
                                    const imgpack__pixels *src,
                                    const imgpack__geometry *g, uint8_t *out,
                                    size_t out_stride) {
    imgpack_status st = IMGPACK_OK;
    const size_t ch = src->channels;
    const axis *h = NULL;
    const axis *v = NULL;
    /* The kept rectangle, in resized-image coordinates. */
    int64_t x0 = g->left > 0 ? g->left : 0;
    int64_t y0 = g->top > 0 ? g->top : 0;
    int64_t x1 = g->left + g->out_width;
    int64_t y1 = g->top + g->out_height;
    int need_h = g->resized_width != g->src_width;
    int need_v = g->resized_height != g->src_height;
    size_t width, band_stride;
    uint8_t *dst;

    if (x1 > g->resized_width)
        x1 = g->resized_width;
    if (y1 > g->resized_height)
        y1 = g->resized_height;
    /* Only an empty source leaves nothing to keep. */
    if (x1 <= x0 || y1 <= y0) {
        zero_padding(out, out_stride, g->out_width * ch, g->out_height, 0, 0, 0,
                     0);
        goto done;
    }
    zero_padding(out, out_stride, g->out_width * ch, g->out_height,
                 (size_t)(x0 - g->left) * ch, (size_t)(x1 - g->left) * ch,
                 (uint32_t)(y0 - g->top), (uint32_t)(y1 - g->top));
    dst =
        out + (size_t)(y0 - g->top) * out_stride + (size_t)(x0 - g->left) * ch;
    width = (size_t)(x1 - x0) * ch;

    if (need_h) {
        st = axis_get(rs, g->src_width, g->resized_width, &h);
        if (st != IMGPACK_OK)
            goto done;
    }
    if (need_v) {
        st = axis_get(rs, g->src_height, g->resized_height, &v);
        if (st != IMGPACK_OK)
            goto done;
    }

    if (need_h && need_v) {
        /* Pillow rounds the horizontal results to 8 bits before the vertical
           pass reads them, so the order is fixed: horizontal first, on the
           source rows the kept output rows reach. first + count never
           decreases, so the last kept row reaches furthest. */
        int32_t band0 = v->first[y0];
        int32_t band1 = v->first[y1 - 1] + v->count[y1 - 1];
        size_t need = (size_t)(band1 - band0) * width;
        band_stride = width;
        if (need > rs->band_size) {
            uint8_t *grown = realloc(rs->band, need);
            if (grown == NULL) {
                st = IMGPACK_ERR_NOMEM;
                goto done;
            }
            rs->band = grown;
            rs->band_size = need;
        }
        horizontal_pass(rs, h, (uint32_t)ch,
                        src->data + (size_t)band0 * src->stride, src->stride,
                        (uint32_t)(band1 - band0), (uint32_t)x0, (uint32_t)x1,
                        rs->band, band_stride);
        vertical_pass(rs, v, rs->band, band_stride, band0, (uint32_t)y0,
                      (uint32_t)y1, width, dst, out_stride);
    } else if (need_v) {
        vertical_pass(rs, v, src->data + (size_t)x0 * ch, src->stride, 0,
                      (uint32_t)y0, (uint32_t)y1, width, dst, out_stride);
    } else if (need_h) {
        horizontal_pass(rs, h, (uint32_t)ch,
                        src->data + (size_t)y0 * src->stride, src->stride,
                        (uint32_t)(y1 - y0), (uint32_t)x0, (uint32_t)x1, dst,
                        out_stride);
    } else {
        for (int64_t y = y0; y < y1; y++)
            memcpy(dst + (size_t)(y - y0) * out_stride,
                   src->data + (size_t)y * src->stride + (size_t)x0 * ch,
                   width);
    }
done:
    return st;
}
