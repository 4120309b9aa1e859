/*
 * JPEG decoding with the libjpeg API of libjpeg-turbo, set up the way Pillow
 * sets it up so the pixels are the same bytes: default parameters (ISLOW
 * integer DCT, fancy upsampling, block smoothing), no draft scaling, output
 * colour space chosen by the component count alone: 1 -> gray, 3 -> RGB
 * (libjpeg reads JFIF/Adobe markers to tell YCbCr from RGB), 4 -> CMYK, which
 * libjpeg also produces from YCCK. Pillow takes 4-component data as inverted
 * ("Adobe") CMYK whether or not an Adobe marker is present and converts it to
 * RGB with its own integer arithmetic; cmyk_to_rgb() reproduces that result.
 * EXIF orientation is not applied: Pillow's open/convert and torchvision
 * ignore it, and the goal is their pixels.
 *
 * Rows are decoded straight into the decoder's pixel buffer, many rows per
 * jpeg_read_scanlines() call so libjpeg can emit a whole iMCU row at once;
 * only CMYK goes through a small batch buffer, being 4 bytes wide per pixel.
 *
 * Errors: libjpeg reports fatal errors by calling error_exit, which must not
 * return; on_error() formats libjpeg's own message into the reason and
 * longjmps back to imgpack__decode_jpeg(). That setjmp/longjmp never leaves
 * this file.
 *
 * Warnings: libjpeg-turbo only warns about corrupt data and carries on,
 * inventing the missing pixels. Pillow reads through a suspending source and
 * fails with "image file is truncated" whenever the data ends before libjpeg
 * is done with the entropy-coded data, which includes a file missing nothing
 * but its EOI marker (the decoder looks ahead past the last MCU); otherwise
 * it ignores warnings. We decode from memory, where libjpeg signals the end
 * of data with a JWRN_JPEG_EOF warning instead of a suspension. The rule
 * here: a warning that means entropy-coded data is missing or unreadable
 * (premature end of file, premature end of a data segment, bad Huffman or
 * arithmetic code, lost restart marker, entropy-coded bytes left over where
 * a scan ends) rejects the image as IMGPACK_ERR_DECODE with libjpeg's own
 * text, e.g. "truncated JPEG: Premature end of JPEG file". For truncation
 * this is Pillow's behaviour; for corrupt but complete data it is stricter
 * than Pillow, which keeps the made-up pixels, as a training set is better
 * off without them. Warnings that do not touch pixel data (extraneous bytes
 * between header markers, unknown JFIF revision, bad ICC marker, odd
 * progression order) are ignored, as Pillow ignores them.
 *
 * With a window, the rows above and below it are never used: they go
 * through the entropy decoder only (jpeg_skip_scanlines), so damage there
 * and the end of the data are checked exactly as a full decode checks them
 * (decode_to_end()).
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* jpeglib.h first: it pulls in jconfig.h, whose D_ARITH_CODING_SUPPORTED
   decides whether jerror.h declares JWRN_ARITH_BAD_CODE. */
#include <jpeglib.h>
#include <jerror.h>

#include "decode_codecs.h"

/*
 * Progressive files take a pass over the whole coefficient buffer per scan;
 * a crafted file with thousands of tiny scans would make decoding crawl.
 * Real encoders emit around ten; libjpeg-turbo's fuzzers cap it at 500 too.
 */
#define JPEG_MAX_SCANS 500

/*
 * Rows per jpeg_read_scanlines() call when converting CMYK: the tallest iMCU
 * row (a vertical sampling factor of 4 times 8-row blocks), so every call
 * can return everything libjpeg has ready.
 */
#define JPEG_BATCH_ROWS (4 * DCTSIZE)

typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr errmgr;
    struct jpeg_progress_mgr progress;
    jmp_buf escape;
    imgpack__decode_args args; /* copied in: one indirection fewer per use */
    imgpack_status status;     /* set before every longjmp to `escape` */
    JDIMENSION start_row, end_row; /* the rows read into pixels */
} jpeg_job;

/* libjpeg's text for its current message, e.g. "Bogus marker length". */
static void message_text(j_common_ptr cinfo, char text[JMSG_LENGTH_MAX]) {
    (*cinfo->err->format_message)(cinfo, text);
}

static void on_error(j_common_ptr cinfo) {
    jpeg_job *job = cinfo->client_data;
    char text[JMSG_LENGTH_MAX];

    message_text(cinfo, text);
    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
        job->status = IMGPACK_ERR_NOMEM;
        snprintf(job->args.reason, IMGPACK__REASON_SIZE, "JPEG: %s", text);
        break;
    case JERR_BAD_PRECISION:
    case JERR_ARITH_NOTIMPL:
        job->status = IMGPACK_ERR_UNSUPPORTED;
        snprintf(job->args.reason, IMGPACK__REASON_SIZE, "unsupported JPEG: %s",
                 text);
        break;
    default:
        job->status = IMGPACK_ERR_DECODE;
        snprintf(job->args.reason, IMGPACK__REASON_SIZE, "corrupt JPEG: %s",
                 text);
        break;
    }
    longjmp(job->escape, 1);
}

/*
 * Whether the current warning means libjpeg is making up pixels. Bytes
 * skipped before a marker (JWRN_EXTRANEOUS_DATA) are junk between header
 * markers before the first scan, and harmless. Once a scan has begun, they
 * are entropy-coded data the decoder never consumed: damaged data made it
 * lose its way, reading fewer bits than were coded, and it decoded
 * something else than what was coded. A restart marker or the end of the
 * scan is where that shows. (Decoding that reads more bits than were coded
 * runs into the marker instead: JWRN_HIT_MARKER.)
 */
static int loses_pixels(j_common_ptr cinfo) {
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        return 1;
    case JWRN_EXTRANEOUS_DATA:
        return ((j_decompress_ptr)cinfo)->input_scan_number > 0;
    default:
        return 0;
    }
}

/* Replaces libjpeg's emit_message, which would print to stderr. */
static void on_message(j_common_ptr cinfo, int msg_level) {
    jpeg_job *job = cinfo->client_data;
    char text[JMSG_LENGTH_MAX];

    /* Levels >= 0 are trace messages; -1 is a warning. */
    if (msg_level >= 0) {
        return;
    }
    cinfo->err->num_warnings++;
    if (!loses_pixels(cinfo)) {
        return;
    }
    message_text(cinfo, text);
    snprintf(job->args.reason, IMGPACK__REASON_SIZE, "%s JPEG: %s",
             cinfo->err->msg_code == JWRN_JPEG_EOF ? "truncated" : "corrupt",
             text);
    job->status = IMGPACK_ERR_DECODE;
    longjmp(job->escape, 1);
}

static void on_progress(j_common_ptr cinfo) {
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    jpeg_job *job = cinfo->client_data;

    if (dinfo->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(job->args.reason, IMGPACK__REASON_SIZE,
                 "corrupt JPEG: more than %d scans", JPEG_MAX_SCANS);
        job->status = IMGPACK_ERR_DECODE;
        longjmp(job->escape, 1);
    }
}

/*
 * Pillow's reading of 4-component data: invert every sample (Adobe CMYK is
 * stored inverted), then per channel RGB = (255 - K) - (C * (255 - K)) / 255
 * with its rounded division by 255, t = a*b + 128, (t + (t >> 8)) >> 8. With
 * the inversion folded in, 255 - K is the raw K sample and C is 255 minus
 * the raw one. The result never leaves 0..255, so no clamping is needed.
 */
static void cmyk_to_rgb(uint8_t *restrict dst, const uint8_t *restrict src,
                        uint32_t width) {
    uint32_t x;
    unsigned c, k, t;

    for (x = 0; x < width; x++, src += 4, dst += 3) {
        k = src[3];
        for (c = 0; c < 3; c++) {
            t = (255u - src[c]) * k + 128u;
            dst[c] = (uint8_t)(k - ((t + (t >> 8)) >> 8));
        }
    }
}

/* Reads every row straight into the pixel buffer. */
static imgpack_status read_direct(jpeg_job *job, uint8_t *pixels,
                                  size_t stride) {
    j_decompress_ptr cinfo = &job->cinfo;
    imgpack_status status;
    JSAMPROW *rows;
    JDIMENSION y, got;

    status = imgpack__scratch_reserve(job->args.rows,
                                      (size_t)job->end_row * sizeof(JSAMPROW),
                                      job->args.reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    rows = (JSAMPROW *)(void *)job->args.rows->data;
    for (y = 0; y < job->end_row; y++) {
        rows[y] = pixels + (size_t)y * stride;
    }
    while (cinfo->output_scanline < job->end_row) {
        got = jpeg_read_scanlines(cinfo, rows + cinfo->output_scanline,
                                  job->end_row - cinfo->output_scanline);
        /* A memory source never suspends, so no rows means a stuck
           decoder; stop rather than spin. */
        if (got == 0) {
            snprintf(job->args.reason, IMGPACK__REASON_SIZE,
                     "corrupt JPEG: decoder stopped at row %u of %u",
                     (unsigned)cinfo->output_scanline,
                     (unsigned)cinfo->output_height);
            status = IMGPACK_ERR_DECODE;
            goto done;
        }
    }
done:
    return status;
}

/* Reads CMYK rows in batches and converts each batch into the pixels. */
static imgpack_status read_cmyk(jpeg_job *job, uint8_t *pixels, size_t stride) {
    j_decompress_ptr cinfo = &job->cinfo;
    imgpack_status status;
    JSAMPROW batch[JPEG_BATCH_ROWS];
    size_t cmyk_stride = (size_t)cinfo->output_width * 4;
    JDIMENSION i, got, want, y;

    status = imgpack__scratch_reserve(
        job->args.rows, cmyk_stride * JPEG_BATCH_ROWS, job->args.reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    for (i = 0; i < JPEG_BATCH_ROWS; i++) {
        batch[i] = job->args.rows->data + i * cmyk_stride;
    }
    while (cinfo->output_scanline < job->end_row) {
        y = cinfo->output_scanline;
        want = job->end_row - y;
        if (want > JPEG_BATCH_ROWS) {
            want = JPEG_BATCH_ROWS;
        }
        got = jpeg_read_scanlines(cinfo, batch, want);
        if (got == 0) {
            snprintf(job->args.reason, IMGPACK__REASON_SIZE,
                     "corrupt JPEG: decoder stopped at row %u of %u",
                     (unsigned)y, (unsigned)cinfo->output_height);
            status = IMGPACK_ERR_DECODE;
            goto done;
        }
        for (i = 0; i < got; i++) {
            cmyk_to_rgb(pixels + (size_t)(y + i) * stride, batch[i],
                        cinfo->output_width);
        }
    }
done:
    return status;
}

/*
 * Narrows decoding to the caller's window, when that saves work, and
 * returns the first decoded column; sets the rows to decode.
 * jpeg_crop_scanline skips the inverse DCT, upsampling and colour
 * conversion of the other iMCU columns (entropy decoding cannot be
 * skipped). Its fancy upsampler treats the crop's edges
 * as image edges, so the outermost decoded columns may differ from a full
 * decode: the window is widened by one iMCU on each side to keep them out.
 * Rows need no margin: libjpeg hands out a row only once it is final, so
 * stopping after the window's last row changes none before it, and
 * jpeg_skip_scanlines keeps the context rows its upsampler needs, so the
 * rows after a skip are those of a full decode (tests/test_decode.c checks
 * both at every row).
 */
static JDIMENSION crop_to_window(jpeg_job *job) {
    j_decompress_ptr cinfo = &job->cinfo;
    uint32_t width = cinfo->output_width;
    uint32_t margin = (uint32_t)cinfo->max_h_samp_factor * DCTSIZE;
    imgpack__region region;
    uint32_t first, end;
    JDIMENSION x, w;

    job->args.window->region(job->args.window->user, width,
                             cinfo->output_height, &region);
    if (region.y1 > region.y0 && region.y0 < job->end_row) {
        job->start_row = region.y0;
        if (region.y1 < job->end_row) {
            job->end_row = region.y1;
        }
    }
    first = region.x0 > margin ? region.x0 - margin : 0;
    end = region.x1 + margin < width ? region.x1 + margin : width;
    if (end <= first || (first == 0 && end == width))
        return 0;
    x = first;
    w = end - first;
    jpeg_crop_scanline(cinfo, &x, &w);
    return x;
}

/*
 * Takes a decode that has the window's rows to the end of the data, as a
 * full decode would get there, so the same damage rejects the file: the
 * rows below the window go through the entropy decoder only, and the last
 * row is decoded (into its place in the buffer) because libjpeg's skip to
 * the very end reads no data at all. jpeg_finish_decompress then reads up
 * to the EOI marker. What it costs is measured in docs/BENCHMARKS.md.
 */
static imgpack_status decode_to_end(jpeg_job *job, uint8_t *origin,
                                    size_t stride, int cmyk) {
    j_decompress_ptr cinfo = &job->cinfo;
    JDIMENSION last = cinfo->output_height - 1;

    if (cinfo->output_scanline < last)
        jpeg_skip_scanlines(cinfo, last - cinfo->output_scanline);
    job->end_row = cinfo->output_height;
    return cmyk ? read_cmyk(job, origin, stride)
                : read_direct(job, origin, stride);
}

/* Everything that may longjmp; called with job->escape set. */
static imgpack_status run(jpeg_job *job) {
    j_decompress_ptr cinfo = &job->cinfo;
    imgpack_status status;
    J_COLOR_SPACE color;
    uint32_t channels, width;
    JDIMENSION first_column = 0;
    size_t stride;
    uint8_t *origin;
    int cmyk = 0;

    jpeg_create_decompress(cinfo);
    cinfo->client_data = job;
    job->progress.progress_monitor = on_progress;
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, job->args.data, (unsigned long)job->args.size);
    jpeg_read_header(cinfo, TRUE);

    status = imgpack__decode_check_size(cinfo->image_width, cinfo->image_height,
                                        job->args.max_pixels, job->args.reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    switch (cinfo->num_components) {
    case 1:
        color = JCS_GRAYSCALE;
        channels = 1;
        break;
    case 3:
        color = JCS_RGB;
        channels = 3;
        break;
    case 4:
        color = JCS_CMYK;
        channels = 3;
        cmyk = 1;
        break;
    default:
        /* Pillow refuses these as well. */
        snprintf(job->args.reason, IMGPACK__REASON_SIZE,
                 "JPEG with %d components is not supported",
                 cinfo->num_components);
        status = IMGPACK_ERR_UNSUPPORTED;
        goto done;
    }
    cinfo->out_color_space = color;
    /* libjpeg's defaults, spelled out because exactness depends on them. */
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    cinfo->scale_num = 1;
    cinfo->scale_denom = 1;

    jpeg_start_decompress(cinfo);
    /* Rows keep the full width even when only a window is decoded, so
       columns keep their coordinates. */
    width = cinfo->output_width;
    stride = (size_t)width * channels;
    status = imgpack__scratch_reserve(
        job->args.pixels, stride * cinfo->output_height, job->args.reason);
    if (status != IMGPACK_OK) {
        goto done;
    }
    job->end_row = cinfo->output_height;
    if (job->args.window != NULL) {
        first_column = crop_to_window(job);
    }
    origin = job->args.pixels->data + (size_t)first_column * channels;
    /* The rows above the window cost entropy decoding only. */
    if (job->start_row > 0) {
        jpeg_skip_scanlines(cinfo, job->start_row);
    }
    if (cmyk) {
        status = read_cmyk(job, origin, stride);
    } else {
        status = read_direct(job, origin, stride);
    }
    if (status == IMGPACK_OK && job->end_row < cinfo->output_height) {
        status = decode_to_end(job, origin, stride, cmyk);
    }
    if (status != IMGPACK_OK) {
        goto done;
    }
    /* Reads up to EOI as Pillow does, so a missing EOI or a broken marker
       after the image data fails as it does there, and so does data left
       over at the end of the last scan. */
    jpeg_finish_decompress(cinfo);

    job->args.out->data = job->args.pixels->data;
    job->args.out->width = width;
    job->args.out->height = cinfo->output_height;
    job->args.out->channels = channels;
    job->args.out->stride = stride;
done:
    return status;
}

imgpack_status imgpack__decode_jpeg(const imgpack__decode_args *args) {
    jpeg_job job;
    imgpack_status status;

    /* Zeroed first so jpeg_destroy_decompress() is safe however early the
       decoder fails, even inside jpeg_create_decompress(). */
    memset(&job, 0, sizeof(job));
    job.args = *args;
    job.cinfo.err = jpeg_std_error(&job.errmgr);
    job.errmgr.error_exit = on_error;
    job.errmgr.emit_message = on_message;
    job.cinfo.client_data = &job;

    if (setjmp(job.escape) == 0) {
        status = run(&job);
    } else {
        status = job.status;
    }
    jpeg_destroy_decompress(&job.cinfo);
    return status;
}
