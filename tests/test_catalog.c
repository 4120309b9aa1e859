/*
 * The public catalog API (imgpack/catalog.h) on a store packed from two
 * real JPEGs and one broken file: the classes and their weights, the
 * reject, the dataset keys, and the statistics written and read back
 * exactly; a read-only handle refuses to write, a missing catalog is
 * IMGPACK_ERR_NOT_FOUND.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "imgpack/catalog.h"
#include "imgpack/pack.h"

static char root[4096];

static void copy_file(const char *from, const char *to) {
    char buffer[1 << 16];
    size_t n;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    CHECK(in && out);
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0)
        CHECK(fwrite(buffer, 1, n, out) == n);
    fclose(in);
    CHECK(fclose(out) == 0);
}

/* root/src/{a,b} with one JPEG each and a broken one in b; packs it into
   root/store. */
static void pack_store(void) {
    const char *sample = getenv("IMGPACK_REPO_SAMPLE_DIR");
    char from[4096 + 64], to[4096 + 64];
    imgpack_packer *packer = NULL;
    CHECK(sample);
    snprintf(to, sizeof to, "%s/src", root);
    CHECK(mkdir(to, 0700) == 0);
    snprintf(to, sizeof to, "%s/src/a", root);
    CHECK(mkdir(to, 0700) == 0);
    snprintf(to, sizeof to, "%s/src/b", root);
    CHECK(mkdir(to, 0700) == 0);
    snprintf(from, sizeof from, "%s/n01440764/n01440764_tench.JPEG", sample);
    snprintf(to, sizeof to, "%s/src/a/tench.jpg", root);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/n01685808/n01685808_whiptail.JPEG", sample);
    snprintf(to, sizeof to, "%s/src/b/whiptail.jpg", root);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s/src/b/broken.jpg", root);
    FILE *broken = fopen(to, "wb");
    CHECK(broken && fputs("not a JPEG", broken) >= 0 && fclose(broken) == 0);
    snprintf(from, sizeof from, "%s/src", root);
    snprintf(to, sizeof to, "%s/store", root);
    if (imgpack_packer_open(&packer, from, to, NULL) != IMGPACK_OK ||
        imgpack_packer_run(packer) != IMGPACK_OK) {
        fprintf(stderr, "pack: %s\n", imgpack_packer_errmsg(packer));
        exit(1);
    }
    imgpack_packer_close(packer);
}

static void test_listings(const char *store) {
    imgpack_catalog *c;
    const imgpack_catalog_class *classes;
    const imgpack_catalog_reject *rejects;
    const imgpack_catalog_entry *entries;
    const char *value;
    uint64_t n, rejected;
    CHECK_OK(imgpack_catalog_open(&c, store, 0));
    CHECK_OK(imgpack_catalog_classes(c, &classes, &n));
    CHECK_EQ(n, 2);
    CHECK_STR_EQ(classes[0].name, "a");
    CHECK_STR_EQ(classes[1].name, "b");
    CHECK_EQ(classes[0].class_id, 0);
    CHECK_EQ(classes[1].num_images, 1);
    /* total / (classes x count) = 2 / (2 x 1) */
    CHECK(classes[0].weight == 1.0 && classes[1].weight == 1.0);
    CHECK_OK(imgpack_catalog_rejects(c, &rejects, &n));
    CHECK_EQ(n, 1);
    CHECK_STR_EQ(rejects[0].path, "b/broken.jpg");
    CHECK(rejects[0].reason[0] != '\0');
    CHECK_OK(imgpack_catalog_num_rejects(c, &rejected));
    CHECK_EQ(rejected, 1);
    CHECK_OK(imgpack_catalog_dataset(c, &entries, &n));
    int has_count = 0;
    for (uint64_t i = 0; i < n; i++) {
        CHECK(i == 0 || strcmp(entries[i - 1].key, entries[i].key) < 0);
        if (strcmp(entries[i].key, "count") == 0)
            has_count = strcmp(entries[i].value, "2") == 0;
    }
    CHECK(has_count);
    CHECK_OK(imgpack_catalog_dataset_get(c, "num_classes", &value));
    CHECK_STR_EQ(value, "2");
    CHECK_EQ(imgpack_catalog_dataset_get(c, "no such key", &value),
             IMGPACK_ERR_NOT_FOUND);
    CHECK(strstr(imgpack_catalog_errmsg(c), "catalog.db") != NULL);
    imgpack_catalog_close(c);
}

static void test_stats(const char *store) {
    /* Not representable in few digits: the text must carry every bit. */
    const double mean[3] = {0.1, 1.0 / 3.0, 0.485}, std[3] = {0.229, 2e-5, 1};
    double got_mean[4], got_std[4];
    uint32_t channels;
    imgpack_catalog *c;
    CHECK_OK(imgpack_catalog_open(&c, store, 0));
    CHECK_EQ(imgpack_catalog_stats(c, got_mean, got_std, 4, &channels),
             IMGPACK_ERR_NOT_FOUND);
    /* Read-only: SQLite refuses the write. */
    CHECK_EQ(imgpack_catalog_stats_store(c, mean, std, 3, 2, 0, 0),
             IMGPACK_ERR_CATALOG);
    imgpack_catalog_close(c);
    CHECK_OK(imgpack_catalog_open(&c, store, IMGPACK_CATALOG_WRITE));
    CHECK_OK(imgpack_catalog_stats_store(c, mean, std, 3, 2, 1, UINT64_MAX));
    imgpack_catalog_close(c);
    CHECK_OK(imgpack_catalog_open(&c, store, 0));
    CHECK_OK(imgpack_catalog_stats(c, got_mean, got_std, 4, &channels));
    CHECK_EQ(channels, 3);
    CHECK(memcmp(got_mean, mean, sizeof mean) == 0);
    CHECK(memcmp(got_std, std, sizeof std) == 0);
    CHECK_EQ(imgpack_catalog_stats(c, got_mean, got_std, 2, &channels),
             IMGPACK_ERR_CORRUPT);
    const char *seed;
    CHECK_OK(imgpack_catalog_dataset_get(c, "stats_seed", &seed));
    CHECK_STR_EQ(seed, "18446744073709551615");
    imgpack_catalog_close(c);
}

int main(void) {
    char store[4096 + 16], missing[4096 + 16];
    imgpack_catalog *c;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/imgpack-test-catalog-XXXXXX",
             tmp ? tmp : "/tmp");
    CHECK(mkdtemp(root));
    pack_store();
    snprintf(store, sizeof store, "%s/store", root);
    test_listings(store);
    test_stats(store);
    snprintf(missing, sizeof missing, "%s/src", root);
    CHECK_EQ(imgpack_catalog_open(&c, missing, 0), IMGPACK_ERR_NOT_FOUND);
    CHECK(strstr(imgpack_catalog_errmsg(c), "catalog.db") != NULL);
    imgpack_catalog_close(c);
    char command[4096 + 16];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    CHECK(system(command) == 0);
    printf("catalog: ok\n");
    return 0;
}
