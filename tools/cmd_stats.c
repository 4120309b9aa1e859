/*
 * imgpack stats: the per-channel mean and std of a store's pixels, in the
 * 0..1 units torchvision's Normalize takes, from one multi-threaded pass
 * (imgpack_reader_channel_stats). The result goes into the catalog's
 * dataset table (keys mean, std, stats_records, stats_seed), where the
 * Python Loader finds it when asked (mean="store"), and onto stdout as a
 * line ready to paste.
 *
 * A sample of N records is the first N of the epoch-0 shuffle of
 * imgpack_sampler_indices with the given seed, the order
 * imgpack.epoch_indices(count, seed=S) gives in Python: the same records
 * on every machine.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "imgpack/catalog.h"
#include "imgpack/reader.h"

static void print_help(void) {
    printf("Usage: imgpack stats OUT_DIR [--sample N [--seed S]] "
           "[--threads T] [--json]\n\n"
           "Computes the per-channel mean and standard deviation of the\n"
           "pixels of the store OUT_DIR, in 0..1 units as Normalize(mean,\n"
           "std) takes them, over every record or a seeded sample. Stores\n"
           "them in the catalog (dataset keys mean, std), where\n"
           "imgpack.Loader(..., mean=\"store\") takes them, and prints\n"
           "them.\n\n"
           "Options:\n"
           "  --sample N   use N records, drawn with --seed (default: all)\n"
           "  --seed S     seed of the sample (default 0); the records are\n"
           "               imgpack.epoch_indices(count, seed=S)[:N]\n"
           "  --threads T  reading threads; 0 = online cores (default 0)\n"
           "  --json       one JSON object on stdout\n"
           "  --help       this text\n\n"
           "Exit status: 0 done; 1 failed (also when the catalog could not\n"
           "store the result, which is still printed); 2 bad command line.\n");
}

/* Stores the result; returns 0 or prints why not and returns -1. */
static int store_stats(const char *dir, const double *mean, const double *std,
                       uint64_t records, int sampled, uint64_t seed) {
    imgpack_catalog *c = NULL;
    int result = 0;
    if (imgpack_catalog_open(&c, dir, IMGPACK_CATALOG_WRITE) != IMGPACK_OK ||
        imgpack_catalog_stats_store(c, mean, std, 3, records, sampled, seed) !=
            IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_catalog_errmsg(c));
        result = -1;
    }
    imgpack_catalog_close(c);
    return result;
}

static void print_text(const double *mean, const double *std, uint64_t records,
                       uint64_t count, int sampled, uint64_t seed,
                       double seconds, int stored) {
    printf("records:  %" PRIu64 " of %" PRIu64, records, count);
    if (sampled)
        printf(" (sample, seed %" PRIu64 ")", seed);
    printf("\nmean:     %.6f %.6f %.6f\n", mean[0], mean[1], mean[2]);
    printf("std:      %.6f %.6f %.6f\n", std[0], std[1], std[2]);
    printf("seconds:  %.3f\n", seconds);
    if (stored)
        printf("stored:   in the catalog; imgpack.Loader(..., "
               "mean=\"store\") uses it\n");
    putchar('\n');
    printf("transforms.Normalize(mean=[%.4f, %.4f, %.4f], "
           "std=[%.4f, %.4f, %.4f])\n",
           mean[0], mean[1], mean[2], std[0], std[1], std[2]);
}

static void print_json(const double *mean, const double *std, uint64_t records,
                       uint64_t count, int sampled, uint64_t seed,
                       double seconds, int stored) {
    printf("{\"records\": %" PRIu64 ", \"count\": %" PRIu64
           ", \"sampled\": %s, \"seed\": ",
           records, count, sampled ? "true" : "false");
    if (sampled)
        printf("%" PRIu64, seed);
    else
        fputs("null", stdout);
    printf(", \"mean\": [%.17g, %.17g, %.17g], \"std\": [%.17g, %.17g, "
           "%.17g], \"seconds\": %.6f, \"stored\": %s}\n",
           mean[0], mean[1], mean[2], std[0], std[1], std[2], seconds,
           stored ? "true" : "false");
}

/* The seeded epoch-0 shuffle of every record, into *out (caller frees);
   its first N are the sample. */
static imgpack_status shuffled_indices(uint64_t count, uint64_t seed,
                                       uint64_t **out) {
    imgpack_status status = IMGPACK_ERR_NOMEM;
    uint64_t *all = malloc(count * sizeof *all);
    if (all)
        status =
            imgpack_sampler_indices(count, seed, 0, 1, 0, 1, 0, all, count);
    if (status != IMGPACK_OK) {
        free(all);
        all = NULL;
    }
    *out = all;
    return status;
}

int cmd_stats(int argc, char **argv) {
    static const struct option options[] = {
        {"sample", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint64_t sample = 0, seed = 0, threads = 0;
    int json = 0, option, code = EXIT_FAILED, has_seed = 0;
    imgpack_reader *reader = NULL;
    uint64_t *indices = NULL;
    double mean[3], std[3];
    struct timespec t0, t1;

    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'h':
            print_help();
            return EXIT_OK;
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &sample))
                return cli_usage_error("stats",
                                       "--sample needs a positive "
                                       "number, not '%s'",
                                       optarg);
            break;
        case 's':
            if (cli_parse_u64(optarg, 0, UINT64_MAX, &seed))
                return cli_usage_error("stats",
                                       "--seed needs a number, not "
                                       "'%s'",
                                       optarg);
            has_seed = 1;
            break;
        case 't':
            if (cli_parse_u64(optarg, 0, 256, &threads))
                return cli_usage_error("stats",
                                       "--threads needs 0..256, not "
                                       "'%s'",
                                       optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            return cli_usage_error("stats",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("stats", "expected one OUT_DIR");
    if (has_seed && !sample)
        return cli_usage_error("stats", "--seed needs --sample");
    const char *dir = argv[optind];
    if (imgpack_reader_open(&reader, dir, 0)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    uint64_t count = imgpack_reader_count(reader);
    int sampled = sample && sample < count;
    uint64_t records = sampled ? sample : count;
    if (count == 0) {
        cli_error(dir, "the store holds no records");
        goto out;
    }
    if (imgpack_reader_channels(reader) != 3) {
        cli_error(dir, "stats needs RGB records");
        goto out;
    }
    if (sampled && shuffled_indices(count, seed, &indices)) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (imgpack_reader_channel_stats(reader, indices, records,
                                     (uint32_t)threads, mean, std, 3)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) +
                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int stored = store_stats(dir, mean, std, records, sampled, seed) == 0;
    if (json)
        print_json(mean, std, records, count, sampled, seed, seconds, stored);
    else
        print_text(mean, std, records, count, sampled, seed, seconds, stored);
    code = stored ? EXIT_OK : EXIT_FAILED;
out:
    free(indices);
    imgpack_reader_close(reader);
    return code;
}
