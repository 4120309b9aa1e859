/*
 * Unit tests of the decode module: codec sniffing, the rejects (empty,
 * random, truncated, bad CRC, over the pixel limit, unsupported formats) and
 * exact decodes of images encoded here in memory with libjpeg, libpng and
 * libwebp. Exactness against Pillow on real files is test_decode_exact.py.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

#include "check.h"
#include "decode.h"

/* A growable byte buffer for the in-memory encoders. */
typedef struct bytes {
    uint8_t *data;
    size_t size;
    size_t capacity;
} bytes;

static void bytes_append(bytes *b, const void *src, size_t n) {
    if (b->size + n > b->capacity) {
        b->capacity = (b->size + n) * 2;
        b->data = realloc(b->data, b->capacity);
        CHECK(b->data != NULL);
    }
    memcpy(b->data + b->size, src, n);
    b->size += n;
}

/* A deterministic test image: smooth gradients plus a few hard edges. */
static uint8_t *make_pattern(uint32_t width, uint32_t height,
                             uint32_t channels) {
    uint8_t *p = malloc((size_t)width * height * channels);
    uint32_t x, y, c;

    CHECK(p != NULL);
    for (y = 0; y < height; y++) {
        for (x = 0; x < width; x++) {
            for (c = 0; c < channels; c++) {
                uint32_t v = (x * 255 / width + y * 97 / height + c * 60) % 256;
                if (((x / 8) + (y / 8)) % 5 == 0) {
                    v = 255 - v;
                }
                p[((size_t)y * width + x) * channels + c] = (uint8_t)v;
            }
        }
    }
    return p;
}

/* Smooth gradients only, so a lossy codec stays close to the source. */
static uint8_t *make_smooth(uint32_t width, uint32_t height,
                            uint32_t channels) {
    uint8_t *p = malloc((size_t)width * height * channels);
    uint32_t x, y, c;

    CHECK(p != NULL);
    for (y = 0; y < height; y++) {
        for (x = 0; x < width; x++) {
            for (c = 0; c < channels; c++) {
                p[((size_t)y * width + x) * channels + c] =
                    (uint8_t)((x * 200 / width + y * 200 / height) / 2 +
                              c * 25);
            }
        }
    }
    return p;
}

/* Chroma sampling of a test JPEG: luma's horizontal and vertical factors
   (chroma stays at 1), and whether to write it progressive. */
typedef struct jpeg_layout {
    int h_samp, v_samp, progressive;
} jpeg_layout;

static const jpeg_layout baseline_420 = {2, 2, 0};

static bytes encode_jpeg(const uint8_t *pixels, uint32_t width, uint32_t height,
                         int components, const jpeg_layout *layout) {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long out_size = 0;
    JSAMPROW row;
    bytes b = {0};

    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &out, &out_size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    if (components == 3) {
        cinfo.comp_info[0].h_samp_factor = layout->h_samp;
        cinfo.comp_info[0].v_samp_factor = layout->v_samp;
    }
    if (layout->progressive)
        jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < height) {
        row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width *
                                      (size_t)components);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    bytes_append(&b, out, out_size);
    free(out);
    return b;
}

static void png_write_bytes(png_structp png, png_bytep data, size_t n) {
    bytes_append(png_get_io_ptr(png), data, n);
}

static void png_flush_nothing(png_structp png) {}

/*
 * Encodes rows of `row_bytes` each (already packed at `depth`, big-endian
 * for 16 bits) as a PNG of `color` type, optionally interlaced.
 */
static bytes encode_png(const uint8_t *rows_data, size_t row_bytes,
                        uint32_t width, uint32_t height, int depth, int color,
                        const png_color *palette, int palette_size,
                        int interlace) {
    png_structp png;
    png_infop info;
    bytes b = {0};
    png_bytep *rows = malloc(height * sizeof(png_bytep));
    uint32_t y;

    CHECK(rows != NULL);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    CHECK(png != NULL);
    info = png_create_info_struct(png);
    CHECK(info != NULL);
    if (setjmp(png_jmpbuf(png)) != 0) {
        fprintf(stderr, "%s:%d: libpng failed to encode\n", __FILE__, __LINE__);
        exit(1);
    }
    png_set_write_fn(png, &b, png_write_bytes, png_flush_nothing);
    png_set_IHDR(png, info, width, height, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette != NULL) {
        png_set_PLTE(png, info, palette, palette_size);
        /* Indices past the palette are the point of some tests. */
        png_set_check_for_invalid_index(png, 0);
    }
    png_write_info(png, info);
    for (y = 0; y < height; y++) {
        rows[y] = (png_bytep)(rows_data + (size_t)y * row_bytes);
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* Decodes and checks the status, returning the reason for inspection. */
static imgpack_status decode(imgpack__decoder *dec, const bytes *b,
                             uint64_t max_pixels, imgpack__pixels *px,
                             char reason[IMGPACK__REASON_SIZE]) {
    return imgpack__decode(dec, b->data, b->size, max_pixels, px, reason);
}

static void check_pixels(const imgpack__pixels *px, const uint8_t *expect,
                         uint32_t width, uint32_t height, uint32_t channels) {
    uint32_t y;

    CHECK_EQ(px->width, width);
    CHECK_EQ(px->height, height);
    CHECK_EQ(px->channels, channels);
    CHECK(px->stride >= (size_t)width * channels);
    for (y = 0; y < height; y++) {
        CHECK(memcmp(px->data + (size_t)y * px->stride,
                     expect + (size_t)y * width * channels,
                     (size_t)width * channels) == 0);
    }
}

/* Mean per-sample difference between a lossy decode and its source. */
static double mean_diff(const imgpack__pixels *px, const uint8_t *expect) {
    double total = 0;
    uint32_t x, y;
    size_t row = (size_t)px->width * px->channels;

    for (y = 0; y < px->height; y++) {
        for (x = 0; x < row; x++) {
            total += abs((int)px->data[(size_t)y * px->stride + x] -
                         (int)expect[(size_t)y * row + x]);
        }
    }
    return total / ((double)row * px->height);
}

static void test_sniff(void) {
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0};
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ";

    CHECK_EQ(imgpack__codec_sniff(jpeg, sizeof(jpeg)), IMGPACK__CODEC_JPEG);
    CHECK_EQ(imgpack__codec_sniff(jpeg, 2), IMGPACK__CODEC_UNKNOWN);
    CHECK_EQ(imgpack__codec_sniff(png, sizeof(png)), IMGPACK__CODEC_PNG);
    CHECK_EQ(imgpack__codec_sniff(png, 7), IMGPACK__CODEC_UNKNOWN);
    CHECK_EQ(imgpack__codec_sniff(webp, 16), IMGPACK__CODEC_WEBP);
    CHECK_EQ(imgpack__codec_sniff((const uint8_t *)"RIFF\0\0\0\0WAVE", 12),
             IMGPACK__CODEC_UNKNOWN);
    CHECK_EQ(imgpack__codec_sniff((const uint8_t *)"GIF89a", 6),
             IMGPACK__CODEC_UNKNOWN);
    CHECK_EQ(imgpack__codec_sniff(NULL, 0), IMGPACK__CODEC_UNKNOWN);
}

static void test_not_images(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t random[4096];
    uint32_t state = 12345;
    size_t i;

    CHECK_EQ(imgpack__decode(dec, NULL, 0, 0, &px, reason), IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "empty file");
    CHECK_EQ(imgpack__decode(dec, random, 0, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    for (i = 0; i < sizeof(random); i++) {
        state = state * 1103515245u + 12345u;
        random[i] = (uint8_t)(state >> 16);
    }
    CHECK_EQ(imgpack__decode(dec, random, sizeof(random), 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "not a JPEG, PNG or WebP") != NULL);
    CHECK_EQ(px.data, NULL);

    /* Random bytes behind each signature reach each codec's error path. */
    memcpy(random, "\xff\xd8\xff", 3);
    CHECK_EQ(imgpack__decode(dec, random, sizeof(random), 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "JPEG") != NULL);
    memcpy(random, "\x89PNG\r\n\x1a\n", 8);
    CHECK_EQ(imgpack__decode(dec, random, sizeof(random), 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "PNG") != NULL);
    memcpy(random, "RIFF\x10\0\0\0WEBPVP8 ", 16);
    CHECK_EQ(imgpack__decode(dec, random, sizeof(random), 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "WebP") != NULL);

    CHECK_EQ(imgpack__decode(dec, (const uint8_t *)"GIF89a\1\0\1\0", 10, 0, &px,
                             reason),
             IMGPACK_ERR_UNSUPPORTED);
    CHECK_STR_EQ(reason, "GIF images are not supported (only JPEG, PNG, WebP)");
    CHECK_EQ(imgpack__decode(NULL, random, 1, 0, &px, reason),
             IMGPACK_ERR_INVALID_ARG);
}

static void test_jpeg(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t *rgb = make_smooth(67, 45, 3);
    uint8_t *gray = make_smooth(67, 45, 1);
    bytes color = encode_jpeg(rgb, 67, 45, 3, &baseline_420);
    bytes mono = encode_jpeg(gray, 67, 45, 1, &baseline_420);
    size_t i, cut;

    CHECK_OK(decode(dec, &color, 0, &px, reason));
    CHECK_EQ(px.width, 67);
    CHECK_EQ(px.height, 45);
    CHECK_EQ(px.channels, 3);
    CHECK_EQ(px.stride, 67 * 3);
    CHECK(mean_diff(&px, rgb) < 2.0);
    CHECK_OK(decode(dec, &mono, 0, &px, reason));
    CHECK_EQ(px.channels, 1);
    CHECK_EQ(px.stride, 67);
    CHECK(mean_diff(&px, gray) < 2.0);

    /* The limit is inclusive: exactly max_pixels passes. */
    CHECK_OK(decode(dec, &color, 67 * 45, &px, reason));
    CHECK_EQ(decode(dec, &color, 1000, &px, reason), IMGPACK_ERR_TOO_LARGE);
    CHECK_STR_EQ(reason,
                 "image is 67x45 = 3015 pixels, over the limit of 1000");

    /* Every prefix is rejected cleanly, even one missing only the EOI
       marker, which Pillow also reports as truncated. */
    for (cut = 0; cut < color.size; cut++) {
        imgpack_status s =
            imgpack__decode(dec, color.data, cut, 0, &px, reason);
        CHECK_EQ(s, IMGPACK_ERR_DECODE);
    }
    CHECK_EQ(imgpack__decode(dec, color.data, color.size / 2, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "truncated JPEG: Premature end of JPEG file");

    /* A header claiming 30000x30000 (SOF0 height and width patched) is
       refused before anything is allocated for its pixels. */
    for (i = 2; i + 8 < color.size; i++) {
        if (color.data[i] == 0xff && color.data[i + 1] == 0xc0) {
            break;
        }
    }
    CHECK(i + 8 < color.size);
    color.data[i + 5] = 30000 >> 8;
    color.data[i + 6] = 30000 & 0xff;
    color.data[i + 7] = 30000 >> 8;
    color.data[i + 8] = 30000 & 0xff;
    CHECK_EQ(decode(dec, &color, 178956970, &px, reason),
             IMGPACK_ERR_TOO_LARGE);
    CHECK_STR_EQ(reason, "image is 30000x30000 = 900000000 pixels, over the "
                         "limit of 178956970");

    free(color.data);
    free(mono.data);
    free(rgb);
    free(gray);
}

static void window_region(void *user, uint32_t width, uint32_t height,
                          imgpack__region *out) {
    const imgpack__region *want = user;
    *out = *want;
    if (out->x1 > width)
        out->x1 = width;
    if (out->y1 > height)
        out->y1 = height;
}

/* Whether the window's pixels of `px` equal those of `want`. */
static int window_matches(const imgpack__pixels *px,
                          const imgpack__pixels *want,
                          const imgpack__region *r) {
    for (uint32_t y = r->y0; y < r->y1; y++)
        if (memcmp(px->data + y * px->stride + r->x0 * px->channels,
                   want->data + y * want->stride + r->x0 * want->channels,
                   (r->x1 - r->x0) * px->channels) != 0)
            return 0;
    return 1;
}

/* A window decodes its pixels exactly as a full decode does, for every
   chroma layout, progressive files and gray, at any columns, first row and
   last row. */
static void test_jpeg_window(imgpack__decoder *dec, imgpack__decoder *full) {
    static const jpeg_layout layouts[] = {{2, 2, 0}, {2, 1, 0}, {1, 1, 0},
                                          {1, 2, 0}, {2, 2, 1}, {4, 1, 0}};
    const uint32_t width = 301, height = 77;
    uint8_t *rgb = make_pattern(width, height, 3);
    uint8_t *gray = make_pattern(width, height, 1);
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px, want;

    for (size_t l = 0; l <= sizeof layouts / sizeof *layouts; l++) {
        int is_gray = l == sizeof layouts / sizeof *layouts;
        bytes b = is_gray ? encode_jpeg(gray, width, height, 1, &layouts[0])
                          : encode_jpeg(rgb, width, height, 3, &layouts[l]);
        CHECK_OK(decode(full, &b, 0, &want, reason));
        for (uint32_t first = 0; first < width; first += 23) {
            for (uint32_t end = first + 1; end <= width + 5; end += 37) {
                for (uint32_t rows = 1; rows <= height; rows += 19) {
                    imgpack__region request = {first, end, 0, rows};
                    imgpack__window window = {window_region, &request};
                    CHECK_OK(imgpack__decode_window(dec, b.data, b.size, 0,
                                                    &window, &px, reason));
                    CHECK_EQ(px.width, width);
                    CHECK_EQ(px.height, height);
                    CHECK_EQ(px.stride, want.stride);
                    window_region(&request, width, height, &request);
                    CHECK(window_matches(&px, &want, &request));
                }
            }
        }
        /* Windows starting below the first row (rows above are skipped),
           across iMCU row boundaries, full width and narrow. */
        for (uint32_t top = 1; top < height; top += 3) {
            for (uint32_t bottom = top + 1; bottom <= height; bottom += 11) {
                for (uint32_t narrow = 0; narrow < 2; narrow++) {
                    imgpack__region request = {
                        narrow ? 37 : 0, narrow ? 120 : width, top, bottom};
                    imgpack__window window = {window_region, &request};
                    CHECK_OK(imgpack__decode_window(dec, b.data, b.size, 0,
                                                    &window, &px, reason));
                    CHECK(window_matches(&px, &want, &request));
                }
            }
        }
        free(b.data);
    }
    free(rgb);
    free(gray);
}

/*
 * A window decodes only its rows, but the data to its end goes through the
 * entropy decoder: a file cut short anywhere, even after the window's last
 * row or by nothing but its EOI marker, is rejected as Pillow rejects it,
 * and so is damage below the window that makes libjpeg lose its way.
 * Trailing bytes after EOI and junk between header markers are accepted,
 * with the window's pixels those of the intact file.
 */
static void test_jpeg_window_reads_to_the_end(imgpack__decoder *dec,
                                              imgpack__decoder *full) {
    const uint32_t width = 96, height = 160;
    uint8_t *rgb = make_pattern(width, height, 3);
    bytes b = encode_jpeg(rgb, width, height, 3, &baseline_420);
    imgpack__region top = {0, width, 0, height / 4};
    imgpack__window window = {window_region, &top};
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px, want;
    uint8_t *copy = malloc(b.size + 8);

    CHECK(copy != NULL);
    CHECK_OK(decode(full, &b, 0, &want, reason));
    for (size_t cut = 0; cut < b.size; cut++)
        CHECK_EQ(
            imgpack__decode_window(dec, b.data, cut, 0, &window, &px, reason),
            IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "truncated JPEG: Premature end of JPEG file");

    memcpy(copy, b.data, b.size);
    memcpy(copy + b.size, "end", 3);
    CHECK_OK(
        imgpack__decode_window(dec, copy, b.size + 3, 0, &window, &px, reason));
    CHECK(window_matches(&px, &want, &top));

    /* Junk after the first marker segment (JFIF's APP0): between header
       markers, ignored. */
    size_t app0_end = 4 + ((size_t)b.data[4] << 8 | b.data[5]);
    CHECK(b.data[3] == 0xE0);
    memcpy(copy, b.data, app0_end);
    memcpy(copy + app0_end, "junk", 4);
    memcpy(copy + app0_end + 4, b.data + app0_end, b.size - app0_end);
    CHECK_OK(
        imgpack__decode_window(dec, copy, b.size + 4, 0, &window, &px, reason));
    CHECK(window_matches(&px, &want, &top));
    CHECK_OK(imgpack__decode(full, copy, b.size + 4, 0, &px, reason));

    /* The last quarter of the data lost, the EOI marker kept: the decoder
       runs into the marker below the window, as a full decode does. */
    size_t kept = b.size * 3 / 4;
    memcpy(copy, b.data, kept);
    memcpy(copy + kept, b.data + b.size - 2, 2);
    CHECK_EQ(imgpack__decode(full, copy, kept + 2, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK_EQ(
        imgpack__decode_window(dec, copy, kept + 2, 0, &window, &px, reason),
        IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "corrupt JPEG: Corrupt JPEG data: premature end of "
                         "data segment");

    /* Entropy-coded data duplicated below the window: the decoder has all
       its blocks before the data ends, and the bytes left over before EOI
       give it away. */
    size_t at = b.size * 3 / 4, run = b.size / 8;
    uint8_t *longer = malloc(b.size + run);
    CHECK(longer != NULL);
    memcpy(longer, b.data, at);
    memcpy(longer + at, b.data + at - run, run);
    memcpy(longer + at + run, b.data + at, b.size - at);
    CHECK_EQ(imgpack__decode(full, longer, b.size + run, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "extraneous bytes before marker 0xd9") != NULL);
    CHECK_EQ(imgpack__decode_window(dec, longer, b.size + run, 0, &window, &px,
                                    reason),
             IMGPACK_ERR_DECODE);
    CHECK(strstr(reason, "extraneous bytes before marker 0xd9") != NULL);

    free(longer);
    free(copy);
    free(b.data);
    free(rgb);
}

/* Overwrites the CRC of the chunk starting at `chunk` (its length field). */
static void fix_png_crc(uint8_t *chunk) {
    uint32_t length = (uint32_t)chunk[0] << 24 | (uint32_t)chunk[1] << 16 |
                      (uint32_t)chunk[2] << 8 | chunk[3];
    uLong crc = crc32(0, chunk + 4, length + 4);
    uint8_t *at = chunk + 8 + length;

    at[0] = (uint8_t)(crc >> 24);
    at[1] = (uint8_t)(crc >> 16);
    at[2] = (uint8_t)(crc >> 8);
    at[3] = (uint8_t)crc;
}

static void test_png_formats(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t *rgba = make_pattern(37, 29, 4);
    uint8_t *rgb = malloc(37 * 29 * 3);
    uint8_t *gray = make_pattern(37, 29, 1);
    uint8_t *wide = malloc(37 * 29 * 6);
    uint8_t *gray16 = malloc(37 * 29 * 2);
    uint8_t *index = malloc(37 * 29);
    uint8_t *expect = malloc(37 * 29 * 3);
    png_color palette[3] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}};
    bytes b;
    size_t i;
    int interlace;

    CHECK(rgb && wide && gray16 && index && expect);
    for (i = 0; i < 37 * 29; i++) {
        memcpy(rgb + 3 * i, rgba + 4 * i, 3);
    }
    for (interlace = 0; interlace < 2; interlace++) {
        b = encode_png(rgb, 37 * 3, 37, 29, 8, PNG_COLOR_TYPE_RGB, NULL, 0,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, rgb, 37, 29, 3);
        free(b.data);

        /* Alpha is dropped, not premultiplied. */
        b = encode_png(rgba, 37 * 4, 37, 29, 8, PNG_COLOR_TYPE_RGBA, NULL, 0,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, rgb, 37, 29, 3);
        free(b.data);

        b = encode_png(gray, 37, 37, 29, 8, PNG_COLOR_TYPE_GRAY, NULL, 0,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, gray, 37, 29, 1);
        free(b.data);

        /* 16-bit RGB keeps the high byte of each sample. */
        for (i = 0; i < 37 * 29 * 3; i++) {
            wide[2 * i] = rgb[i];
            wide[2 * i + 1] = (uint8_t)(255 - rgb[i]);
        }
        b = encode_png(wide, 37 * 6, 37, 29, 16, PNG_COLOR_TYPE_RGB, NULL, 0,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, rgb, 37, 29, 3);
        free(b.data);

        /* 16-bit gray clamps at 255 like Pillow's I -> RGB: values whose
           high byte is set become 255, the rest keep their low byte. */
        for (i = 0; i < 37 * 29; i++) {
            gray16[2 * i] = i % 3 == 0 ? (uint8_t)(i % 7) : 0;
            gray16[2 * i + 1] = gray[i];
            expect[i] = gray16[2 * i] != 0 ? 255 : gray[i];
        }
        b = encode_png(gray16, 37 * 2, 37, 29, 16, PNG_COLOR_TYPE_GRAY, NULL, 0,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, expect, 37, 29, 1);
        free(b.data);

        /* Palette indices past PLTE map to gray i,i,i, as in Pillow. */
        for (i = 0; i < 37 * 29; i++) {
            index[i] = (uint8_t)(i % 5);
            if (index[i] < 3) {
                memcpy(expect + 3 * i, &palette[index[i]], 3);
            } else {
                memset(expect + 3 * i, index[i], 3);
            }
        }
        b = encode_png(index, 37, 37, 29, 8, PNG_COLOR_TYPE_PALETTE, palette, 3,
                       interlace);
        CHECK_OK(decode(dec, &b, 0, &px, reason));
        check_pixels(&px, expect, 37, 29, 3);
        free(b.data);
    }

    /* 1-bit gray: bits become 0 or 255. */
    memset(wide, 0, 5 * 29);
    for (i = 0; i < 37 * 29; i++) {
        int bit = (i % 37 + i / 37) % 3 == 0;
        wide[(i / 37) * 5 + (i % 37) / 8] |= (uint8_t)(bit << (7 - i % 37 % 8));
    }
    for (i = 0; i < 37 * 29; i++) {
        size_t x = i % 37, y = i / 37;
        expect[i] = (wide[y * 5 + x / 8] >> (7 - x % 8)) & 1 ? 255 : 0;
    }
    b = encode_png(wide, 5, 37, 29, 1, PNG_COLOR_TYPE_GRAY, NULL, 0, 0);
    CHECK_OK(decode(dec, &b, 0, &px, reason));
    check_pixels(&px, expect, 37, 29, 1);
    free(b.data);

    free(rgba);
    free(rgb);
    free(gray);
    free(wide);
    free(gray16);
    free(index);
    free(expect);
}

static void test_png_rejects(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t *rgb = make_pattern(40, 30, 3);
    bytes b =
        encode_png(rgb, 40 * 3, 40, 30, 8, PNG_COLOR_TYPE_RGB, NULL, 0, 0);
    size_t cut, idat, crc_at;
    imgpack_status s;

    CHECK_OK(decode(dec, &b, 0, &px, reason));
    CHECK_EQ(decode(dec, &b, 1199, &px, reason), IMGPACK_ERR_TOO_LARGE);

    /* No prefix crashes; short ones are truncations. Once the image data
       is complete, a missing IEND is accepted as Pillow does. */
    for (cut = 0; cut < b.size; cut++) {
        s = imgpack__decode(dec, b.data, cut, 0, &px, reason);
        CHECK(s == IMGPACK_ERR_DECODE ||
              (s == IMGPACK_OK && cut + 12 >= b.size));
    }
    CHECK_EQ(imgpack__decode(dec, b.data, b.size / 2, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "truncated PNG: unexpected end of data");

    /* A flipped byte inside IDAT breaks the zlib stream; one in the CRC
       field is caught by the CRC check. */
    for (idat = 8; idat + 8 < b.size; idat++) {
        if (memcmp(b.data + idat + 4, "IDAT", 4) == 0) {
            break;
        }
    }
    CHECK(idat + 8 < b.size);
    b.data[idat + 10] ^= 0x55;
    CHECK_EQ(decode(dec, &b, 0, &px, reason), IMGPACK_ERR_DECODE);
    b.data[idat + 10] ^= 0x55;
    crc_at = idat + 8 + ((size_t)b.data[idat + 2] << 8 | b.data[idat + 3]);
    b.data[crc_at] ^= 0x55;
    CHECK_EQ(decode(dec, &b, 0, &px, reason), IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "corrupt PNG: IDAT: CRC error");
    b.data[crc_at] ^= 0x55;
    b.data[29] ^= 0x55; /* IHDR's CRC */
    CHECK_EQ(decode(dec, &b, 0, &px, reason), IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "corrupt PNG: IHDR: CRC error");
    b.data[29] ^= 0x55;
    CHECK_OK(decode(dec, &b, 0, &px, reason));

    /* IHDR claiming 30000x30000, with a valid CRC. */
    b.data[16] = 0;
    b.data[17] = 0;
    b.data[18] = 30000 >> 8;
    b.data[19] = 30000 & 0xff;
    b.data[20] = 0;
    b.data[21] = 0;
    b.data[22] = 30000 >> 8;
    b.data[23] = 30000 & 0xff;
    fix_png_crc(b.data + 8);
    CHECK_EQ(decode(dec, &b, 178956970, &px, reason), IMGPACK_ERR_TOO_LARGE);
    CHECK_STR_EQ(reason, "image is 30000x30000 = 900000000 pixels, over the "
                         "limit of 178956970");
    free(b.data);
    free(rgb);
}

static void test_webp(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t *rgb = make_pattern(33, 21, 3);
    uint8_t *out = NULL;
    size_t size = WebPEncodeLosslessRGB(rgb, 33, 21, 33 * 3, &out);
    size_t cut;

    CHECK(size > 0);
    CHECK_OK(imgpack__decode(dec, out, size, 0, &px, reason));
    check_pixels(&px, rgb, 33, 21, 3);
    CHECK_EQ(imgpack__decode(dec, out, size, 33 * 21 - 1, &px, reason),
             IMGPACK_ERR_TOO_LARGE);
    CHECK_STR_EQ(reason, "image is 33x21 = 693 pixels, over the limit of 692");
    for (cut = 0; cut < size; cut++) {
        CHECK_EQ(imgpack__decode(dec, out, cut, 0, &px, reason),
                 IMGPACK_ERR_DECODE);
    }
    CHECK_EQ(imgpack__decode(dec, out, size / 2, 0, &px, reason),
             IMGPACK_ERR_DECODE);
    CHECK_STR_EQ(reason, "truncated WebP: not enough data");
    WebPFree(out);
    free(rgb);
}

/* Buffers are reused: a small image after a big one, then big again. */
static void test_reuse(imgpack__decoder *dec) {
    char reason[IMGPACK__REASON_SIZE];
    imgpack__pixels px;
    uint8_t *big = make_pattern(300, 200, 3);
    uint8_t *small = make_pattern(5, 3, 3);
    bytes b1 =
        encode_png(big, 900, 300, 200, 8, PNG_COLOR_TYPE_RGB, NULL, 0, 0);
    bytes b2 = encode_png(small, 15, 5, 3, 8, PNG_COLOR_TYPE_RGB, NULL, 0, 0);

    CHECK_OK(decode(dec, &b1, 0, &px, reason));
    check_pixels(&px, big, 300, 200, 3);
    CHECK_OK(decode(dec, &b2, 0, &px, reason));
    check_pixels(&px, small, 5, 3, 3);
    CHECK_OK(decode(dec, &b1, 0, &px, reason));
    check_pixels(&px, big, 300, 200, 3);
    free(b1.data);
    free(b2.data);
    free(big);
    free(small);
}

int main(void) {
    imgpack__decoder *dec = NULL, *other = NULL;

    CHECK_EQ(imgpack__decoder_create(NULL), IMGPACK_ERR_INVALID_ARG);
    CHECK_OK(imgpack__decoder_create(&dec));
    CHECK_OK(imgpack__decoder_create(&other));
    imgpack__decoder_destroy(NULL);
    test_sniff();
    test_not_images(dec);
    test_jpeg(dec);
    test_jpeg_window(dec, other);
    test_jpeg_window_reads_to_the_end(dec, other);
    test_png_formats(dec);
    test_png_rejects(dec);
    test_webp(dec);
    test_reuse(dec);
    imgpack__decoder_destroy(dec);
    imgpack__decoder_destroy(other);
    printf("decode: all tests passed\n");
    return 0;
}
