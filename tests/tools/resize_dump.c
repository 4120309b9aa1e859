/*
 * resize_dump: runs imgpack's Resize + CenterCrop on one binary PGM (P5,
 * gray) or PPM (P6, RGB) image and writes the result, in the same format,
 * to stdout, so that tests/python/test_resize_exact.py can compare it with
 * torchvision byte for byte.
 *
 *   resize_dump [--scalar] RESIZE CROP [FILE]
 *
 * RESIZE and CROP are torchvision's Resize(int) and CenterCrop(int) sizes,
 * 0 to skip the stage. FILE defaults to stdin. --scalar turns the vector
 * kernels off. Exit status: 0 done, 1 bad input or failure, 2 misuse.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resize.h"

/* Reads all of `f` into a malloc'd buffer; NULL on failure. */
static uint8_t *read_all(FILE *f, size_t *size) {
    size_t cap = 1 << 20, len = 0, got;
    uint8_t *buf = malloc(cap);

    while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
            cap *= 2;
        }
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    *size = len;
    return buf;
}

/* Parses the next header number at *pos, skipping blanks and # comments. */
static int pnm_number(const uint8_t *data, size_t size, size_t *pos,
                      uint32_t *value) {
    size_t p = *pos;
    uint64_t v = 0;
    int digits = 0;

    while (p < size && (data[p] == '#' || strchr(" \t\r\n", data[p]))) {
        if (data[p] == '#')
            while (p < size && data[p] != '\n')
                p++;
        else
            p++;
    }
    while (p < size && data[p] >= '0' && data[p] <= '9' && v <= UINT32_MAX) {
        v = v * 10 + (uint64_t)(data[p++] - '0');
        digits++;
    }
    *pos = p;
    *value = (uint32_t)v;
    return digits > 0 && v <= UINT32_MAX;
}

/* Points `px` at the samples of a P5/P6 image with maxval 255. */
static int pnm_parse(const uint8_t *data, size_t size, imgpack__pixels *px) {
    size_t pos = 2;
    uint32_t maxval;
    int ok = size > 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '6');

    ok = ok && pnm_number(data, size, &pos, &px->width) &&
         pnm_number(data, size, &pos, &px->height) &&
         pnm_number(data, size, &pos, &maxval) && maxval == 255 && pos < size;
    if (ok) {
        px->channels = data[1] == '6' ? 3 : 1;
        px->stride = (size_t)px->width * px->channels;
        px->data = data + pos + 1; /* one whitespace byte ends the header */
        ok = px->height == 0 || (size - pos - 1) / px->height >= px->stride;
    }
    return ok;
}

int main(int argc, char **argv) {
    int rc = 1, argi = 1, simd = 1;
    FILE *in = stdin;
    uint8_t *data = NULL, *out = NULL;
    size_t size = 0;
    imgpack__resizer *rs = NULL;
    imgpack__pixels px;
    imgpack__geometry g;
    imgpack_status st;

    if (argi < argc && strcmp(argv[argi], "--scalar") == 0) {
        simd = 0;
        argi++;
    }
    if (argc - argi < 2 || argc - argi > 3) {
        fprintf(stderr, "usage: resize_dump [--scalar] RESIZE CROP [FILE]\n");
        rc = 2;
        goto done;
    }
    if (argc - argi == 3 && (in = fopen(argv[argi + 2], "rb")) == NULL) {
        fprintf(stderr, "resize_dump: %s: %s\n", argv[argi + 2],
                strerror(errno));
        goto done;
    }
    data = read_all(in, &size);
    if (data == NULL || !pnm_parse(data, size, &px)) {
        fprintf(stderr, "resize_dump: not a binary PGM/PPM with maxval 255\n");
        goto done;
    }
    imgpack__geometry_plan(px.width, px.height,
                           (uint32_t)strtoul(argv[argi], NULL, 10),
                           (uint32_t)strtoul(argv[argi + 1], NULL, 10), &g);
    out = malloc((size_t)g.out_width * g.out_height * px.channels + 1);
    if (out == NULL || imgpack__resizer_create(&rs) != IMGPACK_OK) {
        fprintf(stderr, "resize_dump: out of memory\n");
        goto done;
    }
    imgpack__resizer_set_simd(rs, simd);
    st = imgpack__resize_crop(rs, &px, &g, out,
                              (size_t)g.out_width * px.channels);
    if (st != IMGPACK_OK) {
        fprintf(stderr, "resize_dump: %s\n", imgpack_strerror(st));
        goto done;
    }
    printf("P%c\n%u %u\n255\n", px.channels == 3 ? '6' : '5', g.out_width,
           g.out_height);
    if (fwrite(out, (size_t)g.out_width * px.channels, g.out_height, stdout) !=
            g.out_height ||
        fflush(stdout) != 0) {
        fprintf(stderr, "resize_dump: write failed\n");
        goto done;
    }
    rc = 0;
done:
    imgpack__resizer_destroy(rs);
    free(out);
    free(data);
    if (in != NULL && in != stdin)
        fclose(in);
    return rc;
}
