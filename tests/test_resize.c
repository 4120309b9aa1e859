/*
 * Tests of src/image/resize.c without Python: the geometry of Resize +
 * CenterCrop (fixed cases from torchvision 0.14, round-half-even, padding,
 * identity, and invariants over many sizes), checksums of outputs computed once
 * with torchvision + Pillow 9.4, and properties of the pixels: the vector and
 * scalar paths agree, strides are honoured, padding is zero, constant images
 * stay constant, the coefficient cache survives eviction.
 * tests/python/test_resize_exact.py compares with Pillow byte for byte.
 */
#include "check.h"
#include "resize.h"

/* A fixed pseudo-random sequence (xorshift64), so failures reproduce. */
static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % n);
}

static uint64_t fnv1a(const uint8_t *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)

static void check_plan(uint32_t w, uint32_t h, uint32_t resize, uint32_t crop,
                       uint32_t rw, uint32_t rh, uint32_t ow, uint32_t oh,
                       int64_t left, int64_t top) {
    imgpack__geometry g;
    imgpack__geometry_plan(w, h, resize, crop, &g);
    CHECK_EQ(g.src_width, w);
    CHECK_EQ(g.src_height, h);
    CHECK_EQ(g.resized_width, rw);
    CHECK_EQ(g.resized_height, rh);
    CHECK_EQ(g.out_width, ow);
    CHECK_EQ(g.out_height, oh);
    CHECK_EQ(g.left, left);
    CHECK_EQ(g.top, top);
}

static void test_geometry_cases(void) {
    /* ImageNet's usual case: 256 * 500 / 375 = 341.33 -> 341; the crop
       offsets are round(58.5) = 58 (to even) and 16. */
    check_plan(500, 375, 256, 224, 341, 256, 224, 224, 58, 16);
    check_plan(375, 500, 256, 224, 256, 341, 224, 224, 16, 58);
    /* Round half to even: (257 - 224) / 2 = 16.5 -> 16, 17.5 -> 18. */
    check_plan(300, 257, 0, 224, 300, 257, 224, 224, 38, 16);
    check_plan(300, 259, 0, 224, 300, 259, 224, 224, 38, 18);
    check_plan(257, 259, 0, 256, 257, 259, 256, 256, 0, 2);
    /* The short side already has the size: unchanged. */
    check_plan(256, 257, 256, 224, 256, 257, 224, 224, 16, 16);
    check_plan(300, 256, 256, 0, 300, 256, 300, 256, 0, 0);
    /* Square. */
    check_plan(333, 333, 256, 224, 256, 256, 224, 224, 16, 16);
    /* Upscaling and extreme shapes. */
    check_plan(1, 1, 256, 224, 256, 256, 224, 224, 16, 16);
    check_plan(3000, 20, 256, 224, 38400, 256, 224, 224, 19088, 16);
    check_plan(20, 3000, 256, 224, 256, 38400, 224, 224, 16, 19088);
    check_plan(97, 61, 256, 224, 407, 256, 224, 224, 92, 16);
    /* Padding: (224 - 100) // 2 = 62 zeros on the left, 62 on the right;
       (224 - 81) // 2 = 71 on top, 72 below. */
    check_plan(100, 80, 0, 224, 100, 80, 224, 224, -62, -72);
    check_plan(101, 81, 0, 224, 101, 81, 224, 224, -61, -71);
    /* Padding along one side only. */
    check_plan(300, 100, 0, 224, 300, 100, 224, 224, 38, -62);
    check_plan(100, 300, 64, 224, 64, 192, 224, 224, -80, -16);
    /* Both stages off; crop only; resize only. */
    check_plan(123, 45, 0, 0, 123, 45, 123, 45, 0, 0);
    check_plan(640, 480, 288, 256, 384, 288, 256, 256, 64, 16);
    check_plan(640, 480, 64, 56, 85, 64, 56, 56, 14, 4);
    check_plan(640, 480, 256, 0, 341, 256, 341, 256, 0, 0);
    /* An empty image has no short side: left alone. */
    check_plan(0, 5, 256, 0, 0, 5, 0, 5, 0, 0);
}

/* Python's int(round(d / 2)) for small d, written independently. */
static int64_t py_round_half(int64_t d) {
    int64_t k = d / 2;
    if (d % 2 == 1 && k % 2 == 1)
        k++;
    return k;
}

static void test_geometry_invariants(void) {
    for (int i = 0; i < 20000; i++) {
        uint32_t w = 1 + rnd(i % 2 ? 5000 : 400);
        uint32_t h = 1 + rnd(i % 3 ? 400 : 5000);
        uint32_t resize = rnd(4) == 0 ? 0 : 1 + rnd(600);
        uint32_t crop = rnd(4) == 0 ? 0 : 1 + rnd(600);
        uint32_t shorter = w <= h ? w : h, longer = w <= h ? h : w;
        uint32_t rw = w, rh = h;
        imgpack__geometry g;

        imgpack__geometry_plan(w, h, resize, crop, &g);
        if (resize > 0) {
            /* floor(resize * long / short): exact in integers at these
               sizes, so the double route must agree. */
            uint32_t new_long = (uint32_t)((uint64_t)resize * longer / shorter);
            rw = w <= h ? resize : new_long;
            rh = w <= h ? new_long : resize;
        }
        CHECK_EQ(g.resized_width, rw);
        CHECK_EQ(g.resized_height, rh);
        CHECK_EQ(g.out_width, crop ? crop : rw);
        CHECK_EQ(g.out_height, crop ? crop : rh);
        if (crop == 0) {
            CHECK_EQ(g.left, 0);
            CHECK_EQ(g.top, 0);
        }
        if (crop > 0 && crop <= rw) {
            CHECK_EQ(g.left, py_round_half((int64_t)rw - crop));
            CHECK(g.left + crop <= rw);
        }
        if (crop > rw)
            CHECK_EQ(g.left, -(int64_t)((crop - rw) / 2));
        if (crop > 0 && crop <= rh)
            CHECK_EQ(g.top, py_round_half((int64_t)rh - crop));
        if (crop > rh)
            CHECK_EQ(g.top, -(int64_t)((crop - rh) / 2));
    }
}

/* The patterns the reference checksums below were made from. */
static uint8_t *pattern(uint32_t w, uint32_t h, uint32_t ch) {
    uint8_t *p = malloc((size_t)w * h * ch);
    CHECK(p != NULL);
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *px = p + ((size_t)y * w + x) * ch;
            if (ch == 1) {
                px[0] = (uint8_t)(x * 7 + y * 13 + x * y / 5);
            } else {
                px[0] = (uint8_t)(x * 7 + y * 13);
                px[1] = (uint8_t)(x * x + y * 3);
                px[2] = (uint8_t)((x ^ y) * 5);
            }
        }
    }
    return p;
}

/* Runs a resize into a fresh buffer of exactly the output size. */
static uint8_t *run(imgpack__resizer *rs, const uint8_t *data, uint32_t w,
                    uint32_t h, uint32_t ch, size_t stride, uint32_t resize,
                    uint32_t crop, imgpack__geometry *g) {
    imgpack__pixels px = {data, w, h, ch, stride};
    uint8_t *out;
    imgpack__geometry_plan(w, h, resize, crop, g);
    out = malloc((size_t)g->out_width * g->out_height * ch + 1);
    CHECK(out != NULL);
    CHECK_OK(imgpack__resize_crop(rs, &px, g, out, (size_t)g->out_width * ch));
    return out;
}

/* Checksums of torchvision.transforms.Compose([Resize(r), CenterCrop(c)])
   on the patterns, as PIL images, with Pillow 9.4 (FNV-1a 64 of the HWC
   bytes). */
static void test_reference_checksums(void) {
    static const struct {
        uint32_t w, h, ch, resize, crop, ow, oh;
        uint64_t fnv;
    } refs[] = {
        {500, 375, 3, 256, 224, 224, 224, UINT64_C(0xb7c3c7a879fc83a5)},
        {375, 500, 1, 256, 224, 224, 224, UINT64_C(0x2266e6f81f62f2a2)},
        {97, 61, 3, 256, 224, 224, 224, UINT64_C(0x432099ecbff8bf36)},
        {20, 300, 1, 64, 56, 56, 56, UINT64_C(0xb856984d7145151c)},
        {640, 480, 3, 288, 256, 256, 256, UINT64_C(0x3e2cc5774ae1e9d2)},
        {100, 80, 3, 0, 224, 224, 224, UINT64_C(0xa032d072c0930fe5)},
        {333, 333, 1, 256, 0, 256, 256, UINT64_C(0x779ba5b849c8878d)},
    };
    imgpack__resizer *rs;
    CHECK_OK(imgpack__resizer_create(&rs));
    for (int simd = 0; simd <= 1; simd++) {
        imgpack__resizer_set_simd(rs, simd);
        for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
            imgpack__geometry g;
            uint8_t *in = pattern(refs[i].w, refs[i].h, refs[i].ch);
            uint8_t *out = run(rs, in, refs[i].w, refs[i].h, refs[i].ch,
                               (size_t)refs[i].w * refs[i].ch, refs[i].resize,
                               refs[i].crop, &g);
            CHECK_EQ(g.out_width, refs[i].ow);
            CHECK_EQ(g.out_height, refs[i].oh);
            CHECK_EQ(fnv1a(out, (size_t)g.out_width * g.out_height * refs[i].ch,
                           FNV_OFFSET),
                     refs[i].fnv);
            free(out);
            free(in);
        }
    }
    imgpack__resizer_destroy(rs);
}

/* Vector and scalar paths give the same bytes, with padded strides on both
   sides; bytes between rows are left alone; padding is zero. */
static void test_simd_matches_scalar(void) {
    imgpack__resizer *fast, *slow;
    CHECK_OK(imgpack__resizer_create(&fast));
    CHECK_OK(imgpack__resizer_create(&slow));
    imgpack__resizer_set_simd(slow, 0);
    for (int i = 0; i < 300; i++) {
        uint32_t ch = rnd(2) ? 3 : 1;
        uint32_t w = 1 + rnd(i % 5 == 0 ? 1200 : 400);
        uint32_t h = 1 + rnd(i % 7 == 0 ? 1200 : 400);
        uint32_t resize = rnd(5) == 0 ? 0 : 1 + rnd(300);
        uint32_t crop = rnd(5) == 0 ? 0 : 1 + rnd(300);
        size_t in_stride = (size_t)w * ch + rnd(3) * 7;
        size_t size = in_stride * h;
        uint8_t *in = malloc(size);
        imgpack__geometry g;
        imgpack__pixels px = {in, w, h, ch, in_stride};
        CHECK(in != NULL);
        for (size_t j = 0; j < size; j++)
            in[j] = (uint8_t)rnd(256);
        imgpack__geometry_plan(w, h, resize, crop, &g);
        size_t row = (size_t)g.out_width * ch, out_stride = row + 5;
        uint8_t *a = malloc(out_stride * g.out_height);
        uint8_t *b = malloc(out_stride * g.out_height);
        CHECK(a != NULL && b != NULL);
        memset(a, 0xa5, out_stride * g.out_height);
        memset(b, 0x5a, out_stride * g.out_height);
        CHECK_OK(imgpack__resize_crop(fast, &px, &g, a, out_stride));
        CHECK_OK(imgpack__resize_crop(slow, &px, &g, b, out_stride));
        for (uint32_t y = 0; y < g.out_height; y++) {
            const uint8_t *ra = a + y * out_stride, *rb = b + y * out_stride;
            int64_t ry = g.top + y;
            if (memcmp(ra, rb, row) != 0) {
                fprintf(stderr, "%ux%u ch %u resize %u crop %u: row %u\n", w, h,
                        ch, resize, crop, y);
                CHECK(0);
            }
            for (size_t k = row; k < out_stride; k++)
                CHECK_EQ(ra[k], 0xa5);
            for (uint32_t x = 0; x < g.out_width; x++) {
                int64_t rx = g.left + x;
                int outside = rx < 0 || ry < 0 || rx >= g.resized_width ||
                              ry >= g.resized_height;
                for (uint32_t c = 0; c < ch && outside; c++)
                    CHECK_EQ(ra[x * ch + c], 0);
            }
        }
        free(b);
        free(a);
        free(in);
    }
    imgpack__resizer_destroy(slow);
    imgpack__resizer_destroy(fast);
}

/* A constant image stays constant wherever it is not padding, and with no
   resize the crop is a plain copy. */
static void test_constant_and_identity(void) {
    imgpack__resizer *rs;
    CHECK_OK(imgpack__resizer_create(&rs));
    for (int i = 0; i < 60; i++) {
        uint32_t ch = i % 2 ? 3 : 1;
        uint32_t w = 1 + rnd(700), h = 1 + rnd(700);
        uint8_t value = (uint8_t)rnd(256);
        size_t size = (size_t)w * h * ch;
        uint8_t *in = malloc(size);
        imgpack__geometry g;
        CHECK(in != NULL);
        memset(in, value, size);
        uint8_t *out =
            run(rs, in, w, h, ch, (size_t)w * ch, 1 + rnd(300), 0, &g);
        for (size_t j = 0; j < (size_t)g.out_width * g.out_height * ch; j++)
            CHECK_EQ(out[j], value);
        free(out);
        for (size_t j = 0; j < size; j++)
            in[j] = (uint8_t)rnd(256);
        uint32_t crop = 1 + rnd(w < h ? w : h);
        out = run(rs, in, w, h, ch, (size_t)w * ch, 0, crop, &g);
        for (uint32_t y = 0; y < crop; y++)
            CHECK(memcmp(out + (size_t)y * crop * ch,
                         in + ((size_t)(g.top + y) * w + (size_t)g.left) * ch,
                         (size_t)crop * ch) == 0);
        free(out);
        out = run(rs, in, w, h, ch, (size_t)w * ch, 0, 0, &g);
        CHECK(memcmp(out, in, size) == 0);
        free(out);
        free(in);
    }
    imgpack__resizer_destroy(rs);
}

/* More sizes than cache slots, revisited: every result equals the one from
   a fresh resizer, so eviction and reuse never mix tables up. */
static void test_cache_eviction(void) {
    static const uint32_t sizes[][2] = {{500, 375}, {375, 500}, {640, 480},
                                        {480, 640}, {300, 200}, {97, 61}};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    uint64_t expect[6][2];
    imgpack__resizer *shared;
    CHECK_OK(imgpack__resizer_create(&shared));
    for (size_t i = 0; i < n; i++) {
        for (uint32_t c = 0; c < 2; c++) {
            uint32_t ch = c ? 3 : 1;
            imgpack__resizer *fresh;
            imgpack__geometry g;
            uint8_t *in = pattern(sizes[i][0], sizes[i][1], ch);
            CHECK_OK(imgpack__resizer_create(&fresh));
            uint8_t *out = run(fresh, in, sizes[i][0], sizes[i][1], ch,
                               (size_t)sizes[i][0] * ch, 256, 224, &g);
            expect[i][c] = fnv1a(out, (size_t)224 * 224 * ch, FNV_OFFSET);
            free(out);
            free(in);
            imgpack__resizer_destroy(fresh);
        }
    }
    for (int round = 0; round < 3 * (int)n; round++) {
        size_t i = (size_t)rnd((uint32_t)n);
        uint32_t c = rnd(2), ch = c ? 3 : 1;
        imgpack__geometry g;
        uint8_t *in = pattern(sizes[i][0], sizes[i][1], ch);
        uint8_t *out = run(shared, in, sizes[i][0], sizes[i][1], ch,
                           (size_t)sizes[i][0] * ch, 256, 224, &g);
        CHECK_EQ(fnv1a(out, (size_t)224 * 224 * ch, FNV_OFFSET), expect[i][c]);
        free(out);
        free(in);
    }
    imgpack__resizer_destroy(shared);
}

int main(void) {
    test_geometry_cases();
    test_geometry_invariants();
    test_reference_checksums();
    test_simd_matches_scalar();
    test_constant_and_identity();
    test_cache_eviction();
    printf("resize: all tests passed\n");
    return 0;
}
