/*
 * The catalog digests the writer keeps in the LMDB metadata so that
 * `imgpack verify` can tell an edited catalog from the packed one without
 * the source files (docs/FORMAT.md, "Catalog digest"):
 *
 * - catalog_digest, a SHA-256 chain over the images rows in index order,
 *   committed with `count`: a chain rather than a digest of the table, so
 *   the writer advances it row by row and a resumed pack goes on from the
 *   stored value. One SHA-256 of ~150 bytes per record.
 * - catalog_dataset_digest, the same chain over the dataset keys the store
 *   has no copy of (source, command, created, skipped), written once.
 *
 * A step is digest = hex(SHA-256(previous hex (64 zeros at first), then
 * the step's text)): for a row " idx class_id len(path):path sha256", for
 * a pair " len(key):key len(value):value", numbers in decimal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "imgpack/verify.h"

/* Every digest before its first step. */
#define START_DIGEST \
    "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct piece {
    const void *data;
    size_t size;
} piece;

static void advance(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                    const piece *pieces, size_t n) {
    imgpack__sha256 *ctx = imgpack__sha256_begin();
    if (!ctx) {
        /* No memory for a context: a digest that matches nothing makes
           the failure visible where it is compared. */
        memset(digest, '!', IMGPACK_CATALOG_DIGEST_HEX - 1);
        digest[IMGPACK_CATALOG_DIGEST_HEX - 1] = '\0';
        return;
    }
    imgpack__sha256_update(ctx, digest[0] ? digest : START_DIGEST, 64);
    for (size_t i = 0; i < n; i++)
        imgpack__sha256_update(ctx, pieces[i].data, pieces[i].size);
    imgpack__sha256_end(ctx, digest);
}

void imgpack_catalog_digest_row(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                                uint64_t index, uint32_t class_id,
                                const char *path, size_t path_size,
                                const char *sha256) {
    char head[96];
    int n = snprintf(head, sizeof head, " %" PRIu64 " %" PRIu32 " %zu:", index,
                     class_id, path_size);
    if (!sha256)
        sha256 = "";
    piece pieces[] = {{head, (size_t)n},
                      {path, path_size},
                      {" ", 1},
                      {sha256, strlen(sha256)}};
    advance(digest, pieces, sizeof pieces / sizeof pieces[0]);
}

void imgpack_catalog_digest_text(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                                 const char *key, const char *value) {
    char key_size[32], value_size[32];
    if (!value)
        value = "";
    int k = snprintf(key_size, sizeof key_size, " %zu:", strlen(key));
    int v = snprintf(value_size, sizeof value_size, " %zu:", strlen(value));
    piece pieces[] = {{key_size, (size_t)k},
                      {key, strlen(key)},
                      {value_size, (size_t)v},
                      {value, strlen(value)}};
    advance(digest, pieces, sizeof pieces / sizeof pieces[0]);
}
