/*
 * jpeg_ycck: writes a YCCK JPEG (4 components, Adobe transform 2) of a
 * deterministic CMYK pattern, because Pillow can only write plain CMYK JPEGs
 * and the decoder must match Pillow on both. The pattern has gradients in
 * every channel, including K, and edges that exercise chroma upsampling.
 *
 *     jpeg_ycck OUT.jpg WIDTH HEIGHT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

int main(int argc, char **argv) {
    int rc = 1;
    FILE *f = NULL;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *row = NULL;
    JSAMPROW rows[1];
    long width, height;
    unsigned x, y;
    int created = 0;

    if (argc != 4 || (width = strtol(argv[2], NULL, 10)) <= 0 ||
        (height = strtol(argv[3], NULL, 10)) <= 0 || width > 4096 ||
        height > 4096) {
        fprintf(stderr, "usage: jpeg_ycck OUT.jpg WIDTH HEIGHT\n");
        rc = 2;
        goto done;
    }
    f = fopen(argv[1], "wb");
    row = malloc((size_t)width * 4);
    if (f == NULL || row == NULL) {
        fprintf(stderr, "jpeg_ycck: %s: cannot write\n", argv[1]);
        goto done;
    }
    /* The default error handler exits on failure, fine for a test tool. */
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    created = 1;
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 4;
    cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, JCS_YCCK);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    for (y = 0; y < (unsigned)height; y++) {
        for (x = 0; x < (unsigned)width; x++) {
            unsigned char *p = row + 4 * (size_t)x;
            p[0] = (unsigned char)(x * 255 / width);
            p[1] = (unsigned char)(y * 255 / height);
            p[2] = (unsigned char)(((x / 7 + y / 5) % 2) ? 200 : 30);
            p[3] = (unsigned char)((x + 2 * y) * 255 / (width + 2 * height));
        }
        rows[0] = row;
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    rc = 0;
done:
    if (created) {
        jpeg_destroy_compress(&cinfo);
    }
    if (f != NULL && fclose(f) != 0) {
        rc = 1;
    }
    free(row);
    return rc;
}
