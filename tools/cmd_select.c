/*
 * imgpack select: the record indices a WHERE clause on the catalog picks,
 * as text, one decimal index a line (docs/FORMAT.md, "Index lists"), for
 * training on a subset without repacking. The query itself, and what it is
 * allowed to do, is imgpack_reader_select's (include/imgpack/reader.h).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "imgpack/reader.h"

static void print_help(void) {
    printf(
        "Usage: imgpack select OUT_DIR WHERE [--param VALUE]... [-o FILE]\n"
        "                      [--count]\n\n"
        "Prints the indices of the records of the store OUT_DIR that the\n"
        "SQL expression WHERE selects, ascending, one a line. WHERE is a\n"
        "WHERE clause over the catalog's images and classes tables, run\n"
        "read-only as\n"
        "  SELECT images.idx FROM images JOIN classes USING (class_id)\n"
        "  WHERE (WHERE) ORDER BY images.idx\n"
        "It must be one expression; ATTACH, PRAGMA, writes and\n"
        "load_extension are refused. Examples:\n"
        "  \"classes.name IN ('n01440764', 'n02102040')\"\n"
        "  \"min(src_width, src_height) >= ?\" --param 256\n"
        "  \"idx %% 10 = 0\"   (a held-out tenth)\n"
        "Put -- before a WHERE that starts with '-'.\n\n"
        "Options:\n"
        "  --param VALUE      a value for the next ? (or :name) in WHERE, in\n"
        "                     order; numbers are bound as numbers\n"
        "  -o, --output FILE  write the indices to FILE instead of stdout\n"
        "  --count            print only how many records match\n"
        "  --help             this text\n");
}

static int write_indices(FILE *f, const uint64_t *indices, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (fprintf(f, "%" PRIu64 "\n", indices[i]) < 0)
            return -1;
    return 0;
}

int cmd_select(int argc, char **argv) {
    static const struct option options[] = {
        {"param", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'},
        {"count", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *output = NULL;
    const char **params = NULL;
    uint32_t n_params = 0;
    imgpack_reader *reader = NULL;
    uint64_t *indices = NULL, count = 0;
    int option, only_count = 0, code = EXIT_FAILED;

    if (!(params = malloc((size_t)argc * sizeof *params))) {
        cli_error(NULL, "out of memory");
        return EXIT_FAILED;
    }
    opterr = 0;
    while ((option = getopt_long(argc, argv, "ho:", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            code = EXIT_OK;
            goto out;
        }
        if (option == '?') {
            code = cli_usage_error("select",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
            goto out;
        }
        if (option == 'p')
            params[n_params++] = optarg;
        else if (option == 'o')
            output = optarg;
        else
            only_count = 1;
    }
    if (argc - optind != 2) {
        code = cli_usage_error("select", "expected OUT_DIR WHERE");
        goto out;
    }
    if (imgpack_reader_open(&reader, argv[optind], 0) != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    /* The subset is never larger than the store. */
    uint64_t capacity = imgpack_reader_count(reader);
    if (!(indices = malloc((capacity ? capacity : 1) * sizeof *indices))) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    if (imgpack_reader_select(reader, argv[optind + 1], params, n_params,
                              indices, capacity, &count) != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    if (only_count) {
        printf("%" PRIu64 "\n", count);
    } else if (output) {
        FILE *f = fopen(output, "w");
        int failed = !f || write_indices(f, indices, count) != 0;
        if ((f && fclose(f) != 0) || failed) {
            cli_error(output, "cannot write the indices");
            goto out;
        }
    } else if (write_indices(stdout, indices, count) != 0 ||
               fflush(stdout) != 0) {
        cli_error(NULL, "cannot write the indices to stdout");
        goto out;
    }
    code = EXIT_OK;
out:
    free(indices);
    free(params);
    imgpack_reader_close(reader);
    return code;
}
