/*
 * imgpack classes: how the records spread over the classes. Counts and
 * class weights come from the catalog's class_weights view (the weights a
 * class-weighted cross-entropy uses), checked against the store's record
 * count; printed as a table with a bar per class, or as JSON, after the
 * summary: min, median, max and the imbalance ratio max/min.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "imgpack/catalog.h"
#include "imgpack/reader.h"

/* Characters of the longest bar: fits an 80-column terminal beside the
   name, description, count and weight columns. */
#define BAR_WIDTH 30
/* Name and description columns are cut to this many bytes. */
#define NAME_WIDTH 20

typedef struct class_row {
    int64_t class_id;
    const char *name;        /* owned by the catalog handle */
    const char *description; /* NULL: none */
    int64_t count;
    double weight; /* < 0: NULL in the view (an empty class) */
} class_row;

typedef struct class_table {
    class_row *rows; /* by count, largest first, then by class id */
    size_t n;
    int64_t total;
    int64_t empty;
    double median;
} class_table;

static void print_help(void) {
    printf("Usage: imgpack classes OUT_DIR [--top N] [--json]\n\n"
           "Shows how the records of the store OUT_DIR spread over its\n"
           "classes: count per class with a bar, the class weight of the\n"
           "catalog's class_weights view (total / (classes x count)), and\n"
           "min, median, max and the imbalance ratio max/min.\n\n"
           "Options:\n"
           "  --top N  list only the N largest classes (the summary still\n"
           "           covers all)\n"
           "  --json   one JSON object on stdout\n"
           "  --help   this text\n");
}

static int by_count(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Fills the median and empty count from the rows' counts. */
static int summarize(class_table *t) {
    int64_t *counts = malloc((t->n ? t->n : 1) * sizeof *counts);
    if (!counts)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        counts[i] = t->rows[i].count;
        t->empty += counts[i] == 0;
    }
    qsort(counts, t->n, sizeof *counts, by_count);
    if (t->n % 2 == 1)
        t->median = (double)counts[t->n / 2];
    else if (t->n > 0)
        t->median = (counts[t->n / 2 - 1] + counts[t->n / 2]) / 2.0;
    free(counts);
    return 0;
}

/* Largest first, then by class id. */
static int by_size(const void *a, const void *b) {
    const class_row *x = a, *y = b;
    if (x->count != y->count)
        return (x->count < y->count) - (x->count > y->count);
    return (x->class_id > y->class_id) - (x->class_id < y->class_id);
}

/* Reads the classes; returns 0, or prints why not and returns -1. The
   rows' strings stay owned by `c`. */
static int read_classes(imgpack_catalog *c, class_table *t) {
    const imgpack_catalog_class *classes;
    uint64_t n;
    if (imgpack_catalog_classes(c, &classes, &n) != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_catalog_errmsg(c));
        return -1;
    }
    if (!(t->rows = malloc((n ? n : 1) * sizeof *t->rows))) {
        cli_error(NULL, "out of memory");
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        class_row *row = &t->rows[i];
        row->class_id = classes[i].class_id;
        row->name = classes[i].name;
        row->description = classes[i].description;
        row->count = classes[i].num_images;
        row->weight = classes[i].weight;
        t->total += row->count;
    }
    t->n = (size_t)n;
    qsort(t->rows, t->n, sizeof *t->rows, by_size);
    return 0;
}

static void print_text(const class_table *t, size_t shown) {
    const class_row *max = t->n ? &t->rows[0] : NULL;
    const class_row *min = t->n ? &t->rows[t->n - 1] : NULL;
    int has_description = 0;
    printf("classes:    %zu, %" PRId64 " records\n", t->n, t->total);
    if (!t->n)
        return;
    printf("per class:  min %" PRId64 " (%s), median %g, max %" PRId64
           " (%s)\n",
           min->count, min->name, t->median, max->count, max->name);
    if (min->count > 0)
        printf("imbalance:  %.2f (max / min)\n",
               (double)max->count / (double)min->count);
    else
        printf("imbalance:  infinite: %" PRId64 " empty classes\n", t->empty);
    for (size_t i = 0; i < shown; i++)
        has_description |= t->rows[i].description != NULL;
    printf("\n%-*s ", NAME_WIDTH, "class");
    if (has_description)
        printf("%-*s ", NAME_WIDTH, "description");
    printf("%8s %8s\n", "count", "weight");
    for (size_t i = 0; i < shown; i++) {
        const class_row *row = &t->rows[i];
        /* Round up, so that no class with records shows an empty bar. */
        int64_t bar =
            max->count ? (row->count * BAR_WIDTH + max->count - 1) / max->count
                       : 0;
        printf("%-*.*s ", NAME_WIDTH, NAME_WIDTH, row->name);
        if (has_description)
            printf("%-*.*s ", NAME_WIDTH, NAME_WIDTH,
                   row->description ? row->description : "");
        printf("%8" PRId64 " ", row->count);
        if (row->weight >= 0)
            printf("%8.3f ", row->weight);
        else
            printf("%8s ", "-");
        for (int64_t k = 0; k < bar; k++)
            putchar('#');
        putchar('\n');
    }
    if (shown < t->n)
        printf("... %zu more classes (--top)\n", t->n - shown);
}

static void print_json(const class_table *t, size_t shown) {
    const class_row *max = t->n ? &t->rows[0] : NULL;
    const class_row *min = t->n ? &t->rows[t->n - 1] : NULL;
    printf("{\"num_classes\": %zu, \"records\": %" PRId64
           ", \"empty_classes\": %" PRId64,
           t->n, t->total, t->empty);
    if (t->n) {
        printf(", \"min\": %" PRId64 ", \"min_class\": ", min->count);
        cli_json_string(min->name);
        printf(", \"median\": %.17g, \"max\": %" PRId64 ", \"max_class\": ",
               t->median, max->count);
        cli_json_string(max->name);
        if (min->count > 0)
            printf(", \"imbalance\": %.17g",
                   (double)max->count / (double)min->count);
        else
            fputs(", \"imbalance\": null", stdout);
    }
    fputs(", \"classes\": [", stdout);
    for (size_t i = 0; i < shown; i++) {
        const class_row *row = &t->rows[i];
        printf("%s{\"class_id\": %" PRId64 ", \"name\": ", i ? ", " : "",
               row->class_id);
        cli_json_string(row->name);
        fputs(", \"description\": ", stdout);
        if (row->description)
            cli_json_string(row->description);
        else
            fputs("null", stdout);
        printf(", \"count\": %" PRId64 ", \"weight\": ", row->count);
        if (row->weight >= 0)
            printf("%.17g}", row->weight);
        else
            fputs("null}", stdout);
    }
    fputs("]}\n", stdout);
}

int cmd_classes(int argc, char **argv) {
    static const struct option options[] = {
        {"top", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint64_t top = 0;
    int json = 0, option, code = EXIT_FAILED;
    imgpack_reader *reader = NULL;
    imgpack_catalog *catalog = NULL;
    class_table table;

    memset(&table, 0, sizeof table);
    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'h':
            print_help();
            return EXIT_OK;
        case 't':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &top))
                return cli_usage_error("classes",
                                       "--top wants a positive "
                                       "number, not '%s'",
                                       optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            return cli_usage_error("classes",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("classes", "expected one OUT_DIR");
    const char *dir = argv[optind];
    /* A complete store: only then does the catalog count exactly its
       records (during a pack it may run one batch ahead). */
    if (imgpack_reader_open(&reader, dir, 0)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    if (imgpack_catalog_open(&catalog, dir, 0) != IMGPACK_OK) {
        cli_error(NULL, "cannot read the classes: %s",
                  imgpack_catalog_errmsg(catalog));
        goto out;
    }
    if (read_classes(catalog, &table))
        goto out;
    if ((uint64_t)table.total != imgpack_reader_count(reader) ||
        table.n != imgpack_reader_num_classes(reader)) {
        cli_error(dir,
                  "the catalog counts %" PRId64 " records in %zu "
                  "classes, the store holds %" PRIu64 " in %" PRIu32,
                  table.total, table.n, imgpack_reader_count(reader),
                  imgpack_reader_num_classes(reader));
        goto out;
    }
    if (summarize(&table)) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    size_t shown = top && top < table.n ? (size_t)top : table.n;
    if (json)
        print_json(&table, shown);
    else
        print_text(&table, shown);
    code = EXIT_OK;
out:
    free(table.rows);
    imgpack_catalog_close(catalog);
    imgpack_reader_close(reader);
    return code;
}
