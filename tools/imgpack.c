/*
 * The imgpack command: dispatches to one subcommand per file.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imgpack/imgpack.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"pack", cmd_pack, "pack an ImageFolder tree into a store"},
    {"combine", cmd_combine, "write the catalog of a sharded pack's shards"},
    {"info", cmd_info, "describe a store: count, classes, format, origin"},
    {"export", cmd_export, "write one record as a PNG or PPM image"},
    {"bench", cmd_bench, "measure reading speed: records/s and MB/s"},
    {"stats", cmd_stats, "per-channel mean and std, for Normalize"},
    {"grid", cmd_grid, "a contact sheet of records with class captions"},
    {"select", cmd_select, "the record indices a SQL WHERE clause selects"},
    {"classes", cmd_classes, "records per class, weights and imbalance"},
    {"verify", cmd_verify, "check every record and the catalog; name problems"},
};

static void print_help(void) {
    printf("Usage: imgpack COMMAND [OPTIONS] ...\n"
           "       imgpack help [COMMAND]\n"
           "       imgpack --version\n\n"
           "Packs image datasets into LMDB stores for training, with the\n"
           "same pixels as torchvision's Resize(256) + CenterCrop(224).\n\n"
           "Commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        printf("  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
    printf("\n'imgpack help COMMAND' (or 'imgpack COMMAND --help', or -h)\n"
           "describes a command.\n\n"
           "Options:\n"
           "  -h, --help  this text\n"
           "  --version   print the version, as 'imgpack X.Y.Z'\n\n"
           "Exit status:\n"
           "  0  done\n"
           "  1  failed (an error message says why)\n"
           "  2  bad command line\n"
           "  3  pack finished but some files were rejected (see the\n"
           "     catalog's rejects table)\n"
           "  4  verify found problems\n");
}

/*
 * Packing allocates and frees ~150 KB blocks all the time: each record's
 * buffer, and LMDB's pages for each value until its batch commits. With
 * glibc's defaults the freed heap is handed back to the kernel after every
 * batch and faulted in again, page by page, for the next: about 8% of the
 * CPU time of a pack. Keeping up to 256 MiB of freed heap avoids that.
 */
static void tune_allocator(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

static const subcommand *find_subcommand(const char *name) {
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (strcmp(name, subcommands[i].name) == 0)
            return &subcommands[i];
    return NULL;
}

/* `imgpack help [COMMAND]`: the same text as `imgpack [COMMAND] --help`. */
static int run_help(int argc, char **argv) {
    if (argc < 3) {
        print_help();
        return EXIT_OK;
    }
    if (argc > 3)
        return cli_usage_error(NULL, "'help' takes one command");
    const subcommand *command = find_subcommand(argv[2]);
    if (!command)
        return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
    char *help_argv[] = {argv[2], "--help", NULL};
    return command->run(2, help_argv);
}

int main(int argc, char **argv) {
    tune_allocator();
    if (argc < 2)
        return cli_usage_error(NULL, "missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_help();
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("imgpack %s\n", imgpack_version());
        return EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return run_help(argc, argv);
    const subcommand *command = find_subcommand(argv[1]);
    if (!command)
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    return command->run(argc - 1, argv + 1);
}
