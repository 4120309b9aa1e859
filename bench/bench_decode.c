/*
 * bench_decode: the bare libjpeg-turbo decode loop, the floor under any
 * JPEG packer. Reads every file named on the command line into memory
 * first, then decodes them all to RGB with libjpeg's defaults (the settings
 * Pillow uses: ISLOW DCT, fancy upsampling), PASSES times, one core.
 * Prints the median images/s over the passes.
 *
 *   bench_decode PASSES FILE...
 */
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <jpeglib.h>
#include <string.h>
#include <time.h>

typedef struct file_bytes {
    unsigned char *data;
    unsigned long size;
} file_bytes;

static int load(const char *path, file_bytes *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    out->size = (unsigned long)ftell(f);
    rewind(f);
    out->data = malloc(out->size);
    int ok = out->data && fread(out->data, 1, out->size, f) == out->size;
    fclose(f);
    return ok ? 0 : -1;
}

/* Decodes one JPEG into `*pixels` (grown as needed); returns 0 on success. */
static int decode(const file_bytes *file, unsigned char **pixels,
                  size_t *capacity) {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, file->data, file->size);
    jpeg_read_header(&cinfo, TRUE);
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
    size_t size = stride * cinfo.output_height;
    if (size > *capacity) {
        *pixels = realloc(*pixels, size);
        *capacity = size;
    }
    /* As many rows per call as libjpeg produces at once (rec_outbuf_height
       is at most 4), so no time goes to call overhead. */
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[4];
        JDIMENSION n = cinfo.output_height - cinfo.output_scanline;
        if (n > (JDIMENSION)cinfo.rec_outbuf_height)
            n = (JDIMENSION)cinfo.rec_outbuf_height;
        for (JDIMENSION i = 0; i < n; i++)
            rows[i] = *pixels + stride * (cinfo.output_scanline + i);
        jpeg_read_scanlines(&cinfo, rows, n);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_decode PASSES FILE...\n");
        return 2;
    }
    int passes = atoi(argv[1]), count = argc - 2;
    file_bytes *files = calloc((size_t)count, sizeof *files);
    double *rates = calloc((size_t)passes, sizeof *rates);
    unsigned char *pixels = NULL;
    size_t capacity = 0;
    for (int i = 0; i < count; i++) {
        if (load(argv[i + 2], &files[i]) != 0) {
            fprintf(stderr, "bench_decode: cannot read %s\n", argv[i + 2]);
            return 1;
        }
    }
    for (int p = 0; p < passes; p++) {
        double start = now();
        for (int i = 0; i < count; i++)
            decode(&files[i], &pixels, &capacity);
        rates[p] = count / (now() - start);
    }
    qsort(rates, (size_t)passes, sizeof *rates, compare_doubles);
    printf("%.1f\n", rates[passes / 2]);
    return 0;
}
