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
 * coefficient tables per (in size, out size) pair, and from the AVX2 kernels
 * of resize_kernels.c, chosen at run time, which run both passes.
 */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resize_kernels.h"

/* Coefficient tables kept per resizer: two axes for landscape images and two
   for portrait ones, so a dataset mixing both stays in the cache. */
#define AXIS_CACHE_SIZE 4

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
        imgpack__resize_lay_out_wide(a);
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
        imgpack__resize_horizontal_pass(
            rs->simd, h, (uint32_t)ch, src->data + (size_t)band0 * src->stride,
            src->stride, (uint32_t)(band1 - band0), (uint32_t)x0, (uint32_t)x1,
            rs->band, band_stride);
        imgpack__resize_vertical_pass(rs->simd, v, rs->band, band_stride, band0,
                                      (uint32_t)y0, (uint32_t)y1, width, dst,
                                      out_stride);
    } else if (need_v) {
        imgpack__resize_vertical_pass(rs->simd, v, src->data + (size_t)x0 * ch,
                                      src->stride, 0, (uint32_t)y0,
                                      (uint32_t)y1, width, dst, out_stride);
    } else if (need_h) {
        imgpack__resize_horizontal_pass(
            rs->simd, h, (uint32_t)ch, src->data + (size_t)y0 * src->stride,
            src->stride, (uint32_t)(y1 - y0), (uint32_t)x0, (uint32_t)x1, dst,
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