/*
 * imgpack combine: the dataset-level catalog of a sharded pack, once every
 * shard is complete.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "imgpack/pack.h"

static void print_help(void) {
    printf("Usage: imgpack combine OUT_DIR\n\n"
           "Writes OUT_DIR/catalog.db over the shards OUT_DIR/shard-K-of-N\n"
           "made by 'imgpack pack --shard': every class, image (with its\n"
           "index in the whole dataset and its shard) and reject, so that\n"
           "'sqlite3 OUT_DIR/catalog.db' answers for the entire dataset.\n"
           "Refuses missing or incomplete shards and shards packed with\n"
           "other options.\n");
}

int cmd_combine(int argc, char **argv) {
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    char message[1024];
    int option;
    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            return EXIT_OK;
        }
        return cli_usage_error("combine", "unknown option '%s'",
                               argv[optind - 1]);
    }
    if (argc - optind != 1)
        return cli_usage_error("combine", "expected one OUT_DIR");
    if (imgpack_combine(argv[optind], message, sizeof message) != IMGPACK_OK) {
        cli_error(NULL, "%s", message);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
