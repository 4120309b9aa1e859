/*
 * imgpack info: what a store holds and how it was made, as text or JSON.
 * Record facts come from the reader API; the story of the pack (command,
 * time, rejects) from the catalog, which is plain SQLite.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "imgpack/catalog.h"
#include "imgpack/reader.h"

/* Text output lists this many class names; JSON lists them all. */
#define CLASSES_SHOWN 5

static void print_help(void) {
    printf("Usage: imgpack info [--json] OUT_DIR\n\n"
           "Describes the store OUT_DIR: record count, classes, format and\n"
           "geometry, bytes on disk, rejected files and how it was made.\n"
           "Incomplete stores (an interrupted pack) are shown as such.\n\n"
           "Options:\n"
           "  --json  one JSON object on stdout\n"
           "  --help  this text\n");
}

static uint64_t file_size(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The records' bytes on disk: every shard's data.mdb (the store's own for
   a single store). */
static uint64_t data_size(imgpack_reader *r) {
    uint64_t total = 0;
    for (uint32_t k = 0; k < imgpack_reader_num_shards(r); k++)
        total += file_size(imgpack_reader_shard_path(r, k), "data.mdb");
    return total;
}

/* What the catalog says; fields stay empty when it cannot be read. */
typedef struct catalog_facts {
    int64_t rejected;
    int64_t skipped;
    char created[64];
    char tool_version[32];
    char command[4096];
} catalog_facts;

/* The dataset key `key` into `out`; left empty when there is none. */
static void copy_key(imgpack_catalog *c, const char *key, char *out,
                     size_t size) {
    const char *value;
    if (imgpack_catalog_dataset_get(c, key, &value) == IMGPACK_OK)
        snprintf(out, size, "%s", value);
}

static void read_catalog(const char *dir, catalog_facts *facts) {
    imgpack_catalog *c = NULL;
    uint64_t rejected;
    const char *skipped;
    memset(facts, 0, sizeof *facts);
    facts->rejected = facts->skipped = -1;
    if (imgpack_catalog_open(&c, dir, 0) != IMGPACK_OK)
        goto out;
    if (imgpack_catalog_num_rejects(c, &rejected) == IMGPACK_OK)
        facts->rejected = (int64_t)rejected;
    if (imgpack_catalog_dataset_get(c, "skipped", &skipped) == IMGPACK_OK)
        facts->skipped = strtoll(skipped, NULL, 10);
    copy_key(c, "created", facts->created, sizeof facts->created);
    copy_key(c, "tool_version", facts->tool_version,
             sizeof facts->tool_version);
    copy_key(c, "command", facts->command, sizeof facts->command);
out:
    imgpack_catalog_close(c);
}

static void print_text(const char *dir, imgpack_reader *r,
                       const catalog_facts *facts) {
    uint32_t classes = imgpack_reader_num_classes(r);
    printf("store:      %s\n", dir);
    printf("state:      %s\n", imgpack_reader_is_complete(r)
                                   ? "complete"
                                   : "INCOMPLETE (pack interrupted)");
    printf("records:    %" PRIu64 "\n", imgpack_reader_count(r));
    printf("classes:    %" PRIu32, classes);
    for (uint32_t c = 0; c < classes && c < CLASSES_SHOWN; c++)
        printf("%s%s", c ? ", " : " (", imgpack_reader_class_name(r, c));
    printf("%s\n", classes > CLASSES_SHOWN ? ", ...)" : classes ? ")" : "");
    printf("format:     %s, ", imgpack_format_name(imgpack_reader_format(r)));
    if (imgpack_reader_width(r))
        printf("%" PRIu32 "x%" PRIu32 "x%" PRIu32 "\n", imgpack_reader_width(r),
               imgpack_reader_height(r), imgpack_reader_channels(r));
    else
        printf("sizes vary, %" PRIu32 " channels\n",
               imgpack_reader_channels(r));
    if (imgpack_reader_num_shards(r) > 1)
        printf("shards:     %" PRIu32 "\n", imgpack_reader_num_shards(r));
    printf("on disk:    data.mdb %.1f MB, catalog.db %.1f MB\n",
           (double)data_size(r) / 1e6,
           (double)file_size(dir, "catalog.db") / 1e6);
    if (facts->rejected >= 0)
        printf("rejected:   %" PRId64 " files (see the rejects table)\n",
               facts->rejected);
    if (facts->skipped >= 0)
        printf("skipped:    %" PRId64 " files that are not images\n",
               facts->skipped);
    if (facts->created[0])
        printf("made:       %s by imgpack %s\n", facts->created,
               facts->tool_version);
    if (facts->command[0])
        printf("command:    %s\n", facts->command);
}

static void print_json(const char *dir, imgpack_reader *r,
                       const catalog_facts *facts) {
    fputs("{\"path\": ", stdout);
    cli_json_string(dir);
    printf(
        ", \"complete\": %s, \"count\": %" PRIu64 ", \"num_classes\": %" PRIu32
        ", \"format\": \"%s\""
        ", \"width\": %" PRIu32 ", \"height\": %" PRIu32
        ", \"channels\": %" PRIu32 ", \"shards\": %" PRIu32
        ", \"data_bytes\": %" PRIu64 ", \"catalog_bytes\": %" PRIu64
        ", \"rejected\": %" PRId64 ", \"skipped\": %" PRId64 ", \"created\": ",
        imgpack_reader_is_complete(r) ? "true" : "false",
        imgpack_reader_count(r), imgpack_reader_num_classes(r),
        imgpack_format_name(imgpack_reader_format(r)), imgpack_reader_width(r),
        imgpack_reader_height(r), imgpack_reader_channels(r),
        imgpack_reader_num_shards(r), data_size(r),
        file_size(dir, "catalog.db"), facts->rejected, facts->skipped);
    cli_json_string(facts->created);
    fputs(", \"tool_version\": ", stdout);
    cli_json_string(facts->tool_version);
    fputs(", \"command\": ", stdout);
    cli_json_string(facts->command);
    fputs(", \"classes\": [", stdout);
    for (uint32_t c = 0; c < imgpack_reader_num_classes(r); c++) {
        fputs(c ? ", " : "", stdout);
        cli_json_string(imgpack_reader_class_name(r, c));
    }
    fputs("]}\n", stdout);
}

int cmd_info(int argc, char **argv) {
    static const struct option options[] = {{"json", no_argument, NULL, 'j'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int json = 0, option, code = EXIT_FAILED;
    imgpack_reader *reader = NULL;
    catalog_facts facts;

    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            return EXIT_OK;
        }
        if (option == '?')
            return cli_usage_error("info", "unknown option '%s'",
                                   argv[optind - 1]);
        json = 1;
    }
    if (argc - optind != 1)
        return cli_usage_error("info", "expected one OUT_DIR");
    const char *dir = argv[optind];
    if (imgpack_reader_open(&reader, dir, IMGPACK_OPEN_INCOMPLETE)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    read_catalog(dir, &facts);
    if (json)
        print_json(dir, reader, &facts);
    else
        print_text(dir, reader, &facts);
    code = EXIT_OK;
out:
    imgpack_reader_close(reader);
    return code;
}
