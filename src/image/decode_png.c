/*
 * PNG decoding with libpng 1.6, giving the pixels Pillow 9.4 gives for
 * `Image.open(f).convert('RGB')`, which decide every transform here:
 *  - 1, 2 and 4-bit gray are scaled to 8 bits by repeating the bits (1 -> 255,
 *    2-bit v -> v * 0x55, 4-bit v -> v * 0x11), as both libraries do.
 *  - 16-bit gray opens in Pillow as a 32-bit integer image ("I"), and its
 *    conversion to RGB clamps, so values above 255 become 255 and the rest
 *    keep their low byte. It is not scaled, and libpng has no transform for
 *    that, so the 16-bit rows are read into the pixel buffer with a stride of
 *    2 * width and narrowed in place.
 *  - Other 16-bit images (gray+alpha, RGB, RGBA) keep the high byte of each
 *    sample, which is libpng's png_set_strip_16().
 *  - Alpha is dropped, never premultiplied; tRNS is ignored (convert('RGB')
 *    keeps it only as metadata).
 *  - Palette images are expanded through a table built like Pillow's: the
 *    PLTE entries, then a gray ramp (index i -> i,i,i) for indices past the
 *    end of PLTE. libpng's own expansion would give black there and would turn
 *    tRNS into alpha. The indices are read into the last third of each RGB row
 *    and expanded forwards in place, which never overwrites an unread index.
 *  - Gamma, colour profiles, text and EXIF are not applied or kept (Pillow's
 *    open/convert and torchvision ignore EXIF orientation too); ancillary
 *    chunks are skipped unparsed, though still CRC-checked, to save time and
 *    attack surface.
 *  - Interlaced images go through libpng's Adam7 handling.
 *
 * Failures: libpng reports errors through a callback that must not return;
 * on_error() records libpng's message and longjmps back to
 * imgpack__decode_png(), and the jump never leaves this file. A CRC error in
 * any chunk read before the image data rejects the file (Pillow rejects those
 * too; libpng alone would only warn for ancillary chunks). Like Pillow, we
 * stop after the last image row, so chunks after the image data are not read
 * and a missing IEND is accepted.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <png.h>

#include "decode_codecs.h"

typedef struct png_job {
    png_structp png;
    png_infop info;
    imgpack__decode_args args; /* copied in: one indirection fewer per use */
    imgpack_status status;     /* set before every longjmp */
    int truncated;             /* the data ended before libpng was done */
    size_t offset;
} png_job;

/* How the rows libpng delivers become our pixels. */
typedef enum png_layout {
    PNG_LAYOUT_DIRECT,  /* rows are already 8-bit gray or RGB */
    PNG_LAYOUT_GRAY16,  /* 16-bit gray, narrowed in place with clamping */
    PNG_LAYOUT_PALETTE, /* 8-bit indices, expanded in place */
} png_layout;

static void on_error(png_structp png, png_const_charp message) {
    png_job *job = png_get_error_ptr(png);

    if (strcasestr(message, "out of memory") != NULL) {
        job->status = IMGPACK_ERR_NOMEM;
        snprintf(job->args.reason, IMGPACK__REASON_SIZE, "PNG: %s", message);
    } else {
        job->status = IMGPACK_ERR_DECODE;
        snprintf(job->args.reason, IMGPACK__REASON_SIZE, "%s PNG: %s",
                 job->truncated ? "truncated" : "corrupt", message);
    }
    png_longjmp(png, 1);
}

/* Warnings (odd but readable files) are not worth a reject; the library
   never prints, so they are dropped. */
static void on_warning(png_structp png, png_const_charp message) {}

static void on_read(png_structp png, png_bytep dst, size_t length) {
    png_job *job = png_get_io_ptr(png);

    if (length > job->args.size - job->offset) {
        job->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(dst, job->args.data + job->offset, length);
    job->offset += length;
}

/*
 * Sets up libpng's transforms for the image in the IHDR and says how its
 * rows become ours: channels out, bytes per row libpng will deliver.
 */
static png_layout choose_layout(png_job *job, uint32_t width,
                                uint32_t *channels, size_t *row_bytes) {
    png_structp png = job->png;
    int depth = png_get_bit_depth(png, job->info);
    int color = png_get_color_type(png, job->info);
    png_layout layout = PNG_LAYOUT_DIRECT;

    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_set_packing(png);
        layout = PNG_LAYOUT_PALETTE;
    } else if (color == PNG_COLOR_TYPE_GRAY && depth == 16) {
        layout = PNG_LAYOUT_GRAY16;
    } else {
        if (depth < 8) {
            png_set_expand_gray_1_2_4_to_8(png);
        }
        if (depth == 16) {
            png_set_strip_16(png);
        }
        if ((color & PNG_COLOR_MASK_ALPHA) != 0) {
            png_set_strip_alpha(png);
        }
    }
    *channels = (color & PNG_COLOR_MASK_COLOR) != 0 ? 3 : 1;
    *row_bytes = (size_t)width * (layout == PNG_LAYOUT_DIRECT   ? *channels
                                  : layout == PNG_LAYOUT_GRAY16 ? 2
                                                                : 1);
    return layout;
}

/* Pillow's palette: PLTE entries, then index i -> gray i. */
static void build_palette(png_job *job, uint8_t table[256][3]) {
    png_colorp plte = NULL;
    int count = 0;
    int i;

    for (i = 0; i < 256; i++) {
        table[i][0] = table[i][1] = table[i][2] = (uint8_t)i;
    }
    if (png_get_PLTE(job->png, job->info, &plte, &count) != 0) {
        for (i = 0; i < count && i < 256; i++) {
            table[i][0] = plte[i].red;
            table[i][1] = plte[i].green;
            table[i][2] = plte[i].blue;
        }
    }
}

/* Row `row` holds `width` indices at offset 2 * width; expand to RGB. */
static void expand_palette_row(uint8_t *row, uint32_t width,
                               const uint8_t table[256][3]) {
    const uint8_t *index = row + 2 * (size_t)width;
    uint32_t x;

    for (x = 0; x < width; x++) {
        const uint8_t *rgb = table[index[x]];
        row[3 * (size_t)x] = rgb[0];
        row[3 * (size_t)x + 1] = rgb[1];
        row[3 * (size_t)x + 2] = rgb[2];
    }
}

/* Big-endian 16-bit gray to 8 bits, clamped at 255 as Pillow's I -> RGB. */
static void narrow_gray16_row(uint8_t *row, uint32_t width) {
    uint32_t x;

    for (x = 0; x < width; x++) {
        row[x] = row[2 * (size_t)x] != 0 ? 255 : row[2 * (size_t)x + 1];
    }
}

/* Everything that may longjmp; called with png_jmpbuf set. */
static imgpack_status run(png_job *job) {
    png_structp png = job->png;
    imgpack_status status;
    png_uint_32 width, height, y;
    png_bytep *rows;
    png_layout layout;
    uint32_t channels;
    size_t row_bytes, stride, offset;
    uint8_t table[256][3];

    png_set_read_fn(png, job, on_read);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, job->info);

    width = png_get_image_width(png, job->info);
    height = png_get_image_height(png, job->info);
    status = imgpack__decode_check_size(width, height, job->args.max_pixels,
                                        job->args.reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    layout = choose_layout(job, width, &channels, &row_bytes);
    png_set_interlace_handling(png);
    png_read_update_info(png, job->info);
    if (png_get_rowbytes(png, job->info) != row_bytes) {
        snprintf(job->args.reason, IMGPACK__REASON_SIZE,
                 "unsupported PNG: rows of %zu bytes where %zu were expected",
                 (size_t)png_get_rowbytes(png, job->info), row_bytes);
        status = IMGPACK_ERR_UNSUPPORTED;
        goto done;
    }

    stride = layout == PNG_LAYOUT_GRAY16 ? row_bytes : (size_t)width * channels;
    offset = layout == PNG_LAYOUT_PALETTE ? 2 * (size_t)width : 0;
    status = imgpack__scratch_reserve(job->args.pixels, stride * height,
                                      job->args.reason);
    if (status == IMGPACK_OK) {
        status = imgpack__scratch_reserve(job->args.rows,
                                          (size_t)height * sizeof(png_bytep),
                                          job->args.reason);
    }
    if (status != IMGPACK_OK) {
        goto done;
    }
    rows = (png_bytep *)(void *)job->args.rows->data;
    for (y = 0; y < height; y++) {
        rows[y] = job->args.pixels->data + (size_t)y * stride + offset;
    }
    png_read_image(png, rows);

    if (layout == PNG_LAYOUT_PALETTE) {
        build_palette(job, table);
        for (y = 0; y < height; y++) {
            expand_palette_row(rows[y] - offset, width, table);
        }
    } else if (layout == PNG_LAYOUT_GRAY16) {
        for (y = 0; y < height; y++) {
            narrow_gray16_row(rows[y], width);
        }
    }
    job->args.out->data = job->args.pixels->data;
    job->args.out->width = width;
    job->args.out->height = height;
    job->args.out->channels = channels;
    job->args.out->stride = stride;
done:
    return status;
}

imgpack_status imgpack__decode_png(const imgpack__decode_args *args) {
    png_job job;
    imgpack_status status;

    memset(&job, 0, sizeof(job));
    job.args = *args;
    job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error,
                                     on_warning);
    if (job.png == NULL) {
        snprintf(args->reason, IMGPACK__REASON_SIZE, "PNG: out of memory");
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    job.info = png_create_info_struct(job.png);
    if (job.info == NULL) {
        snprintf(args->reason, IMGPACK__REASON_SIZE, "PNG: out of memory");
        status = IMGPACK_ERR_NOMEM;
        goto done;
    }
    if (setjmp(png_jmpbuf(job.png)) == 0) {
        status = run(&job);
    } else {
        status = job.status;
    }
done:
    png_destroy_read_struct(&job.png, &job.info, NULL);
    return status;
}
