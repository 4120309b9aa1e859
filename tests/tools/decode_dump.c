/*
 * decode_dump: decodes one image file with the internal decoder and writes
 * the pixels to stdout as a binary PGM (gray) or PPM (RGB), so the Python
 * tests can compare them byte for byte with Pillow. On a reject it prints
 * "decode_dump: FILE: STATUS: reason" to stderr and exits 1; misuse exits 2.
 *
 *     decode_dump [--max-pixels N] FILE
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

/* Reads all of `path` into a malloc'd buffer; returns 0 on success. */
static int read_file(const char *path, uint8_t **data, size_t *size) {
    int rc = -1;
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long length;

    if (f == NULL) {
        goto done;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (length = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        goto done;
    }
    /* One spare byte so an empty file still gets a non-NULL buffer. */
    buf = malloc((size_t)length + 1);
    if (buf == NULL || fread(buf, 1, (size_t)length, f) != (size_t)length) {
        goto done;
    }
    *data = buf;
    *size = (size_t)length;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (f != NULL) {
        fclose(f);
    }
    return rc;
}

int main(int argc, char **argv) {
    int rc = 1;
    const char *path;
    uint64_t max_pixels = 0;
    uint8_t *data = NULL;
    size_t size = 0;
    imgpack__decoder *dec = NULL;
    imgpack__pixels px;
    imgpack_status status;
    char reason[IMGPACK__REASON_SIZE];
    uint32_t y;

    if (argc == 4 && strcmp(argv[1], "--max-pixels") == 0) {
        max_pixels = strtoull(argv[2], NULL, 10);
        path = argv[3];
    } else if (argc == 2) {
        path = argv[1];
    } else {
        fprintf(stderr, "usage: decode_dump [--max-pixels N] FILE\n");
        rc = 2;
        goto done;
    }
    if (read_file(path, &data, &size) != 0) {
        fprintf(stderr, "decode_dump: %s: cannot read\n", path);
        goto done;
    }
    if (imgpack__decoder_create(&dec) != IMGPACK_OK) {
        fprintf(stderr, "decode_dump: out of memory\n");
        goto done;
    }
    status = imgpack__decode(dec, data, size, max_pixels, &px, reason);
    if (status != IMGPACK_OK) {
        fprintf(stderr, "decode_dump: %s: %s: %s\n", path,
                imgpack_status_name(status), reason);
        goto done;
    }
    printf("P%c\n%u %u\n255\n", px.channels == 1 ? '5' : '6', px.width,
           px.height);
    for (y = 0; y < px.height; y++) {
        if (fwrite(px.data + (size_t)y * px.stride,
                   (size_t)px.width * px.channels, 1, stdout) != 1) {
            goto done;
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    imgpack__decoder_destroy(dec);
    free(data);
    return rc;
}
