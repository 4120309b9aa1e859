/*
 * imgpack export: one record out as an image file a person can look at and
 * a tool can compare: binary PPM/PGM, or PNG through libpng's simplified
 * API. The pixels are exactly the record's (jpeg/webp records decoded).
 */
#include <getopt.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "imgpack/reader.h"

static void print_help(void) {
    printf("Usage: imgpack export OUT_DIR INDEX -o FILE\n\n"
           "Writes record INDEX of the store OUT_DIR as an image: FILE ending\n"
           "in .png gives PNG, .ppm (or .pgm for gray records) binary PNM.\n\n"
           "Options:\n"
           "  -o, --output FILE  the image to write\n"
           "  --help             this text\n");
}

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcasecmp(name + n - s, suffix) == 0;
}

static int write_pnm(const char *path, const imgpack_record *rec) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t bytes = (size_t)rec->width * rec->height * rec->channels;
    fprintf(f, "P%c\n%u %u\n255\n", rec->channels == 1 ? '5' : '6', rec->width,
            rec->height);
    int ok = fwrite(rec->data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_png(const char *path, const imgpack_record *rec) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = rec->width;
    image.height = rec->height;
    image.format = rec->channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    int ok = png_image_write_to_file(&image, path, 0, rec->data, 0, NULL);
    png_image_free(&image);
    return ok ? 0 : -1;
}

int cmd_export(int argc, char **argv) {
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *output = NULL;
    imgpack_reader *reader = NULL;
    imgpack_record rec;
    uint8_t *pixels = NULL;
    uint64_t index;
    int option, code = EXIT_FAILED;

    opterr = 0;
    while ((option = getopt_long(argc, argv, "ho:", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            return EXIT_OK;
        }
        if (option == '?')
            return cli_usage_error("export",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
        output = optarg;
    }
    if (argc - optind != 2 || !output)
        return cli_usage_error("export", "expected OUT_DIR INDEX -o FILE");
    if (cli_parse_u64(argv[optind + 1], 0, UINT64_MAX, &index))
        return cli_usage_error("export", "INDEX must be a number, not '%s'",
                               argv[optind + 1]);
    if (!has_suffix(output, ".png") && !has_suffix(output, ".ppm") &&
        !has_suffix(output, ".pgm"))
        return cli_usage_error("export",
                               "FILE must end in .png, .ppm or "
                               ".pgm: '%s'",
                               output);
    if (imgpack_reader_open(&reader, argv[optind], IMGPACK_OPEN_INCOMPLETE) ||
        imgpack_reader_get(reader, index, &rec)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    uint64_t bytes = (uint64_t)rec.width * rec.height * rec.channels;
    pixels = malloc(bytes ? bytes : 1);
    if (!pixels) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    if (imgpack_reader_decode(reader, index, pixels, bytes, &rec)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    if ((has_suffix(output, ".png") ? write_png(output, &rec)
                                    : write_pnm(output, &rec)) != 0) {
        cli_error(output, "cannot write the image");
        goto out;
    }
    code = EXIT_OK;
out:
    free(pixels);
    imgpack_reader_close(reader);
    return code;
}
