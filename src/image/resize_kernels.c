/*
 * The two passes of resize.c over the pixels, and the kernels that run them:
 * AVX2 kernels chosen at run time, with portable scalar code for other CPUs
 * and for the last columns of a row, where a vector load would read past its
 * end. Both give Pillow's bytes: the sums are exact integers over the
 * fixed-point weights resize.c computed, so they may be computed in any
 * order and vectorised freely.
 *
 * The AVX2 horizontal kernels split the 22-bit weights in two 11-bit halves
 * so that vpmaddwd, a 16-bit multiply-add, can do the work; the layout of
 * those halves is built here too (imgpack__resize_lay_out_wide), beside the
 * only code that reads it. The vertical pass uses vpmulld. The AVX2 code is
 * compiled per function (target attribute), so the file needs no -mavx2 and
 * the scalar code runs on any x86-64.
 */
#include "resize_kernels.h"

#include <string.h>

#ifdef RESIZE_X86
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2")))
/* For the small vector helpers, so that each caller gets a copy
   specialised for its constants. */
#define INLINE inline __attribute__((always_inline))
#endif

#define ROUNDING (1 << (PRECISION_BITS - 1))

/* vpmaddwd multiplies 16-bit lanes, too narrow for a 22-bit weight, so the
   AVX2 kernels split w into hi = w >> 11 and lo = w & 0x7ff (a weight is at
   most 1 << 22, so hi <= 2048 and both fit int16) and compute
   (sum(p * hi) << 11) + sum(p * lo), which is sum(p * w) exactly. Vector
   adds wrap modulo 2**32 and Pillow's total fits an int32, so even a partial
   sum that wrapped (lo sums over thousands of taps) ends exact. */
#define SPLIT_BITS 11
#define SPLIT_MASK ((1 << SPLIT_BITS) - 1)

/* ---- AVX2 layout ------------------------------------------------------- */

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
void imgpack__resize_lay_out_wide(axis *a) {
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

/* Each call below is its own copy of h_row_avx2, specialised for RGB or
   gray and for the common single step of taps. */
AVX2_FN static void h_avx2(const axis *a, const uint8_t *row, uint32_t channels,
                           uint32_t x0, uint32_t x1, uint8_t *dst) {
    if (channels == 3 && a->groups == 1)
        h_row_avx2(a, row, 3, x0, x1, dst, 1);
    else if (channels == 3)
        h_row_avx2(a, row, 3, x0, x1, dst, a->groups);
    else if (a->groups == 1)
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

void imgpack__resize_horizontal_pass(int simd, const axis *a, uint32_t channels,
                                     const uint8_t *src, size_t src_stride,
                                     uint32_t rows, uint32_t x0, uint32_t x1,
                                     uint8_t *dst, size_t dst_stride) {
    /* The vector kernels take the columns up to the end of the blocks whose
       loads stay inside the row; the scalar code does the rest. */
    uint32_t v1 = x0;
#ifdef RESIZE_X86
    if (simd && (channels == 1 || channels == 3)) {
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
        if (v1 > x0)
            h_avx2(a, row, channels, x0, v1, out);
#endif
        h_scalar(a, row, channels, v1, x1, out + (size_t)(v1 - x0) * channels);
    }
}

void imgpack__resize_vertical_pass(int simd, const axis *a, const uint8_t *src,
                                   size_t src_stride, int32_t src_row0,
                                   uint32_t y0, uint32_t y1, size_t width,
                                   uint8_t *dst, size_t dst_stride) {
    for (uint32_t y = y0; y < y1; y++) {
        const uint8_t *rows =
            src + (size_t)(a->first[y] - src_row0) * src_stride;
        const int32_t *w = a->weights + (size_t)y * a->kstride;
        uint8_t *out = dst + (size_t)(y - y0) * dst_stride;
        size_t x = 0;
#ifdef RESIZE_X86
        if (simd)
            x = v_avx2(rows, src_stride, w, a->count[y], width, out);
#endif
        v_scalar(rows + x, src_stride, w, a->count[y], width - x, out + x);
    }
}
