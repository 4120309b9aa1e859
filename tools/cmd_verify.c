/*
 * imgpack verify: prints what imgpack_verify (imgpack/verify.h) finds in
 * a store, one problem per line on stdout ("record N: ...", "catalog:
 * ...", "store: ..." or "source: ..."), then a summary line. Failures
 * that stop the check (the store cannot be opened) go to stderr.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "imgpack/verify.h"

static void print_help(void) {
    printf("Usage: imgpack verify [--sources SRC_DIR] OUT_DIR\n\n"
           "Checks the store OUT_DIR: every metadata value's checksum,\n"
           "every record's header and payload checksum, that jpeg and webp\n"
           "payloads decode, labels against the classes and the catalog, and\n"
           "the catalog: its integrity, its rows against the digest the\n"
           "store keeps of them, duplicate paths, its dataset keys against\n"
           "the store. With --sources, also hashes each packed source file\n"
           "under SRC_DIR and compares it with the catalog's sha256.\n\n"
           "Each problem is one line on stdout naming the record, catalog\n"
           "row or file; a summary line follows. A store whose pack stopped\n"
           "is reported as incomplete. The checks run in a child process:\n"
           "if damaged LMDB pages crash it, that is reported as \"LMDB\n"
           "structure damaged near record N\" (exit status 4).\n\n"
           "Options:\n"
           "  --sources SRC_DIR  re-hash the source files\n"
           "  --help             this text\n\n"
           "Exit status: 0 no problems, 1 the store cannot be read,\n"
           "2 bad command line, 4 problems found.\n");
}

static void print_problem(void *ctx, const imgpack_problem *p) {
    (void)ctx;
    printf("%s\n", p->message);
}

/* The summary line and the exit status of a check that ran. */
static int print_summary(const char *dir, const imgpack_verify_summary *s) {
    if (!s->opened && !s->signal) {
        printf("%s: cannot be checked further: 1 problem\n", dir);
        return EXIT_PROBLEMS;
    }
    /* A crashed check could not finish: whether the store is complete is
       not the news. */
    printf("%s: %" PRIu64 " records, %" PRIu32 " classes%s: %" PRIu64
           " problem%s\n",
           dir, s->records, s->classes,
           s->complete || s->signal ? "" : ", incomplete", s->problems,
           s->problems == 1 ? "" : "s");
    return s->problems || !s->complete ? EXIT_PROBLEMS : EXIT_OK;
}

int cmd_verify(int argc, char **argv) {
    static const struct option options[] = {
        {"sources", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    imgpack_verify_options opts = {0};
    imgpack_verify_summary summary;
    int option;

    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            return EXIT_OK;
        }
        if (option == '?')
            return cli_usage_error("verify",
                                   "unknown option or missing "
                                   "argument '%s'",
                                   argv[optind - 1]);
        opts.sources = optarg;
    }
    if (argc - optind != 1)
        return cli_usage_error("verify", "expected one OUT_DIR");
    const char *dir = argv[optind];
    /* Lines as they come: a check can take long on a large store. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (imgpack_verify(dir, &opts, print_problem, NULL, &summary) !=
        IMGPACK_OK) {
        cli_error(NULL, "%s", summary.error);
        return EXIT_FAILED;
    }
    return print_summary(dir, &summary);
}
