/*
 * Batch images to their output type and layout (batch_convert.h).
 *
 * One pass from the source rows to the output: the crop is an offset, the
 * flip a negative step, and each value is a table load: 256 entries per
 * channel, computed once per batcher as torch computes them, in float32
 * ((float)v / 255.0f, then - mean, then / std, no step fused with
 * another), so the output equals torch's bit for bit. The 16-bit tables
 * round those floats once, to nearest even, which is what torch's
 * .half() and .bfloat16() do to a float32 tensor.
 *
 * Output is written with streaming (non-temporal) stores where it is
 * aligned: a batch is bigger than the caches and is read later, by
 * another thread, so writing around the cache saves the read-for-ownership
 * of each line, half the memory traffic.
 */
#include "batch_convert.h"

#include <stddef.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "imgpack/reader.h"

/* IEEE binary16 from binary32, rounding to nearest, ties to even. */
static uint16_t half_from_float(float f) {
    uint32_t x, mag, sign;
    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    mag = x & 0x7fffffffu;
    if (mag > 0x7f800000u) /* NaN: stays quiet NaN */
        return (uint16_t)(sign | 0x7e00u);
    if (mag >= 0x477ff000u) /* 65520 and up round past 65504: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (mag < 0x38800000u) {
        /* Below 2^-14: a subnormal half, a multiple of 2^-24. The float is
           m * 2^(e - 150) with a 24-bit m, so the multiple is m >> shift
           with shift = 126 - e, rounded on the bits shifted out. */
        uint32_t e = mag >> 23, m = (mag & 0x7fffffu) | 0x800000u, q, rest,
                 halfway;
        if (e < 102) /* below 2^-25: rounds to zero */
            return (uint16_t)sign;
        uint32_t shift = 126 - e;
        q = m >> shift;
        rest = m & ((1u << shift) - 1);
        halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* Normal: round away the 13 low mantissa bits (a carry may bump the
       exponent, which is right), then rebias the exponent 127 -> 15. */
    mag += 0xfffu + ((mag >> 13) & 1);
    return (uint16_t)(sign | ((mag - 0x38000000u) >> 13));
}

/* bfloat16 from binary32: the top 16 bits, rounded to nearest even, as
   c10::BFloat16 rounds. */
static uint16_t bfloat16_from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

void imgpack__converter_init(imgpack__converter *c, uint32_t width,
                             uint32_t height, uint32_t channels, int32_t layout,
                             int32_t dtype, const float *mean, const float *std,
                             uint32_t n_norm) {
    c->width = width;
    c->height = height;
    c->channels = channels;
    c->layout = layout;
    c->dtype = dtype;
    c->elem_size = dtype == IMGPACK_DTYPE_UINT8     ? 1
                   : dtype == IMGPACK_DTYPE_FLOAT32 ? 4
                                                    : 2;
    for (uint32_t k = 0; k < channels; k++) {
        float m = mean[n_norm == 1 ? 0 : k];
        float s = std[n_norm == 1 ? 0 : k];
        for (int v = 0; v < 256; v++) {
            /* torch: img.float().div(255), then .sub_(mean).div_(std),
               each a float32 operation. */
            c->lut[k][v] = ((float)v / 255.0f - m) / s;
            c->lut16[k][v] = dtype == IMGPACK_DTYPE_BFLOAT16
                                 ? bfloat16_from_float(c->lut[k][v])
                                 : half_from_float(c->lut[k][v]);
        }
    }
}

/* memcpy, with streaming stores for the 16-byte aligned part of `dst`. */
static void stream_copy(uint8_t *dst, const uint8_t *src, size_t n) {
#ifdef __SSE2__
    size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
    if (head > n)
        head = n;
    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 16; n -= 16, dst += 16, src += 16)
        _mm_stream_si128((__m128i *)(void *)dst,
                         _mm_loadu_si128((const __m128i *)(const void *)src));
#endif
    memcpy(dst, src, n);
}

void imgpack__convert_fence(void) {
#ifdef __SSE2__
    _mm_sfence();
#endif
}

/*
 * One output row of an image: output columns x0..x1-1 have a source
 * pixel, the first at `p`, each next one `step` bytes on (negative when
 * flipped); the columns outside are padding. A row wholly outside the
 * source has x0 == x1 == 0 and no `p`.
 */
typedef struct row_job {
    const uint8_t *p;
    ptrdiff_t step;
    uint32_t x0, x1;
    uint32_t src_channels;
} row_job;

static void row_u8_nhwc(const imgpack__converter *cv, const row_job *j,
                        uint8_t *dst) {
    uint32_t c = cv->channels, w = cv->width;
    memset(dst, 0, (size_t)j->x0 * c);
    memset(dst + (size_t)j->x1 * c, 0, (size_t)(w - j->x1) * c);
    if (j->x1 == j->x0)
        return;
    const uint8_t *p = j->p;
    uint8_t *o = dst + (size_t)j->x0 * c;
    if (j->step > 0 && j->src_channels == c) {
        stream_copy(o, p, (size_t)(j->x1 - j->x0) * c);
    } else if (j->src_channels == c && c == 3) {
        for (uint32_t x = j->x0; x < j->x1; x++, o += 3, p += j->step) {
            o[0] = p[0];
            o[1] = p[1];
            o[2] = p[2];
        }
    } else {
        for (uint32_t x = j->x0; x < j->x1; x++, o += c, p += j->step)
            for (uint32_t k = 0; k < c; k++)
                o[k] = p[j->src_channels == 1 ? 0 : k];
    }
}

static void row_u8_nchw(const imgpack__converter *cv, const row_job *j,
                        uint8_t *dst, size_t plane) {
    for (uint32_t k = 0; k < cv->channels; k++) {
        uint8_t *o = dst + k * plane;
        memset(o, 0, j->x0);
        memset(o + j->x1, 0, cv->width - j->x1);
        if (j->x1 == j->x0)
            continue;
        const uint8_t *p = j->p + (j->src_channels == 1 ? 0 : k);
        for (uint32_t x = j->x0; x < j->x1; x++, p += j->step)
            o[x] = *p;
    }
}

/*
 * Table rows, the same code for float32 (`lut`) and the 16-bit types
 * (`lut16`, whose bits are stored as they are): padding gets the value of
 * 0, as torch normalises the zeros CenterCrop padded with.
 */
#define TABLE_ROWS(T, table)                                                   \
    static void row_##T##_nchw_any(const imgpack__converter *cv,               \
                                   const row_job *j, T *dst, size_t plane) {   \
        for (uint32_t k = 0; k < cv->channels; k++) {                          \
            T *o = dst + k * plane;                                            \
            const uint8_t *q = j->p + (j->src_channels == 1 ? 0 : k);          \
            for (uint32_t x = 0; x < j->x0; x++)                               \
                o[x] = cv->table[k][0];                                        \
            for (uint32_t x = j->x1; x < cv->width; x++)                       \
                o[x] = cv->table[k][0];                                        \
            for (uint32_t x = j->x0; x < j->x1; x++, q += j->step)             \
                o[x] = cv->table[k][*q];                                       \
        }                                                                      \
    }                                                                          \
    static void row_##T##_nhwc(const imgpack__converter *cv, const row_job *j, \
                               T *dst) {                                       \
        uint32_t c = cv->channels;                                             \
        for (uint32_t x = 0; x < cv->width; x++)                               \
            if (x < j->x0 || x >= j->x1)                                       \
                for (uint32_t k = 0; k < c; k++)                               \
                    dst[(size_t)x * c + k] = cv->table[k][0];                  \
        const uint8_t *p = j->p;                                               \
        for (uint32_t x = j->x0; x < j->x1; x++, p += j->step)                 \
            for (uint32_t k = 0; k < c; k++)                                   \
                dst[(size_t)x * c + k] =                                       \
                    cv->table[k][p[j->src_channels == 1 ? 0 : k]];             \
    }

TABLE_ROWS(float, lut)
TABLE_ROWS(uint16_t, lut16)

static void row_f32_nchw(const imgpack__converter *cv, const row_job *j,
                         float *dst, size_t plane) {
    if (cv->channels != 3 || j->src_channels != 3 || j->x1 == j->x0) {
        row_float_nchw_any(cv, j, dst, plane);
        return;
    }
    /* The hot loop: three table loads and three stores per pixel. */
    const float *l0 = cv->lut[0], *l1 = cv->lut[1], *l2 = cv->lut[2];
    float *o0 = dst, *o1 = dst + plane, *o2 = dst + 2 * plane;
    const uint8_t *p = j->p;
    uint32_t x;
    ptrdiff_t s = j->step;
    for (x = 0; x < j->x0; x++) {
        o0[x] = l0[0];
        o1[x] = l1[0];
        o2[x] = l2[0];
    }
    for (x = j->x1; x < cv->width; x++) {
        o0[x] = l0[0];
        o1[x] = l1[0];
        o2[x] = l2[0];
    }
    x = j->x0;
#ifdef __SSE2__
    /* Scalar up to 16-byte alignment, then four pixels per step with
       streaming stores, when the three planes align alike. */
    if ((((uintptr_t)(o0 + x) ^ (uintptr_t)(o1 + x)) & 15) == 0 &&
        (((uintptr_t)(o0 + x) ^ (uintptr_t)(o2 + x)) & 15) == 0) {
        for (; x < j->x1 && ((uintptr_t)(o0 + x) & 15); x++, p += s) {
            o0[x] = l0[p[0]];
            o1[x] = l1[p[1]];
            o2[x] = l2[p[2]];
        }
        for (; x + 4 <= j->x1; x += 4, p += 4 * s) {
            _mm_stream_ps(o0 + x, _mm_setr_ps(l0[p[0]], l0[p[s]], l0[p[2 * s]],
                                              l0[p[3 * s]]));
            _mm_stream_ps(o1 + x,
                          _mm_setr_ps(l1[p[1]], l1[p[s + 1]], l1[p[2 * s + 1]],
                                      l1[p[3 * s + 1]]));
            _mm_stream_ps(o2 + x,
                          _mm_setr_ps(l2[p[2]], l2[p[s + 2]], l2[p[2 * s + 2]],
                                      l2[p[3 * s + 2]]));
        }
    }
#endif
    for (; x < j->x1; x++, p += s) {
        o0[x] = l0[p[0]];
        o1[x] = l1[p[1]];
        o2[x] = l2[p[2]];
    }
}

void imgpack__convert(const imgpack__converter *cv, const imgpack__pixels *px,
                      int64_t top, int64_t left, int flip, uint8_t *dst) {
    int64_t w = cv->width, in_w = px->width;
    int64_t x0, x1;
    row_job j;
    size_t plane = (size_t)cv->width * cv->height;
    size_t row_values = (size_t)w * cv->channels;
    j.src_channels = px->channels;
    if (!flip) {
        /* Output x reads source column left + x. */
        x0 = left < 0 ? -left : 0;
        x1 = in_w - left < w ? in_w - left : w;
        j.step = (ptrdiff_t)px->channels;
    } else {
        /* Output x reads source column left + (w - 1 - x). */
        x0 = left + w - in_w > 0 ? left + w - in_w : 0;
        x1 = left + w < w ? left + w : w;
        j.step = -(ptrdiff_t)px->channels;
    }
    if (x1 < x0)
        x1 = x0;
    j.x0 = (uint32_t)x0;
    j.x1 = (uint32_t)x1;
    for (uint32_t y = 0; y < cv->height; y++) {
        int64_t sy = top + y;
        row_job rj = j;
        if (sy >= 0 && sy < px->height && x1 > x0) {
            int64_t sx = flip ? left + w - 1 - x0 : left + x0;
            rj.p =
                px->data + (size_t)sy * px->stride + (size_t)sx * px->channels;
        } else {
            rj.p = NULL;
            rj.x0 = rj.x1 = 0;
        }
        int nhwc = cv->layout == IMGPACK_LAYOUT_NHWC;
        size_t at = nhwc ? y * row_values : (size_t)y * w; /* in values */
        if (cv->dtype == IMGPACK_DTYPE_UINT8) {
            if (nhwc)
                row_u8_nhwc(cv, &rj, dst + at);
            else
                row_u8_nchw(cv, &rj, dst + at, plane);
        } else if (cv->dtype == IMGPACK_DTYPE_FLOAT32) {
            float *f = (float *)(void *)dst + at;
            if (nhwc)
                row_float_nhwc(cv, &rj, f);
            else
                row_f32_nchw(cv, &rj, f, plane);
        } else {
            uint16_t *h = (uint16_t *)(void *)dst + at;
            if (nhwc)
                row_uint16_t_nhwc(cv, &rj, h);
            else
                row_uint16_t_nchw_any(cv, &rj, h, plane);
        }
    }
}
