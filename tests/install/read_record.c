/*
 * A program outside the imgpack tree, built against an installed imgpack
 * (pkg-config, find_package) or against the sources (add_subdirectory):
 *   read_record STORE INDEX OUT
 * writes the payload of record INDEX to the file OUT and prints
 * "count width height channels label format version". It first checks
 * that the library it runs with is the one its header came from.
 * tests/python/test_install.py builds and runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <imgpack/reader.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: read_record STORE INDEX OUT\n");
        return 2;
    }
    if (strcmp(imgpack_version(), IMGPACK_VERSION_STRING) != 0) {
        fprintf(stderr, "read_record: built with imgpack %s, runs with %s\n",
                IMGPACK_VERSION_STRING, imgpack_version());
        return 1;
    }
    int status = 1;
    imgpack_reader *reader = NULL;
    imgpack_record record;
    FILE *out = NULL;
    if (imgpack_reader_open(&reader, argv[1], 0) != IMGPACK_OK ||
        imgpack_reader_get(reader, strtoull(argv[2], NULL, 10), &record) !=
            IMGPACK_OK) {
        fprintf(stderr, "read_record: %s\n", imgpack_reader_errmsg(reader));
        goto done;
    }
    out = fopen(argv[3], "wb");
    if (!out || fwrite(record.data, 1, record.size, out) != record.size) {
        perror(argv[3]);
        goto done;
    }
    printf("%llu %u %u %u %u %s %s\n",
           (unsigned long long)imgpack_reader_count(reader), record.width,
           record.height, record.channels, record.label,
           imgpack_format_name(record.format), imgpack_version());
    status = 0;
done:
    if (out && fclose(out) != 0 && status == 0) {
        perror(argv[3]);
        status = 1;
    }
    imgpack_reader_close(reader);
    return status;
}
