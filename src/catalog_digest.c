/*
 * The catalog digest: a SHA-256 chain over the images rows, kept by the
 * writer in the LMDB metadata (`catalog_digest`, committed with `count`)
 * so that `imgpack verify` can tell an edited path, sha256 or class from
 * the packed one without the source files. A chain, not a digest of the
 * whole table, so the writer advances it row by row and a resumed pack
 * goes on from the stored value; one SHA-256 of ~150 bytes per record.
 *
 * Step: digest = hex(SHA-256(previous hex (64 zeros at first), " ",
 * index, " ", class_id, " ", path length, ":", path, " ", sha256)),
 * numbers in decimal (docs/FORMAT.md, "Catalog digest").
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "imgpack/verify.h"

void imgpack_catalog_digest_row(char digest[IMGPACK_CATALOG_DIGEST_HEX],
                                uint64_t index, uint32_t class_id,
                                const char *path, size_t path_size,
                                const char *sha256) {
    char head[96];
    imgpack__sha256 *ctx = imgpack__sha256_begin();
    if (!ctx) {
        /* No memory for a context: a digest that matches nothing makes
           the failure visible where it is compared. */
        memset(digest, '!', IMGPACK_CATALOG_DIGEST_HEX - 1);
        digest[IMGPACK_CATALOG_DIGEST_HEX - 1] = '\0';
        return;
    }
    /* 64 zeros: the digest before the first row. */
    const char *previous =
        digest[0] ? digest
                  : "0000000000000000000000000000000000000000000000000000000000000000";
    int n = snprintf(head, sizeof head, "%.64s %" PRIu64 " %" PRIu32 " %zu:",
                     previous, index, class_id, path_size);
    imgpack__sha256_update(ctx, head, (size_t)n);
    imgpack__sha256_update(ctx, path, path_size);
    imgpack__sha256_update(ctx, " ", 1);
    if (sha256)
        imgpack__sha256_update(ctx, sha256, strlen(sha256));
    imgpack__sha256_end(ctx, digest);
}
