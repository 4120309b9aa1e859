/*
 * imgpack_verify's check of the source files (with opts->sources): each
 * images row's file, under the source directory, must still hash to the
 * sha256 the catalog keeps of it (digest.c, the packer's own SHA-256).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "verify.h"

/* Read size when hashing source files: large enough that the syscalls
   cost nothing next to SHA-256, small enough to sit on the stack. */
#define HASH_CHUNK (64 * 1024)

/* SHA-256 of the file at `path` as lowercase hex; 0, or errno. */
static int hash_file(const char *path, char hex[IMGPACK__SHA256_HEX]) {
    uint8_t chunk[HASH_CHUNK];
    imgpack__sha256 *ctx;
    int err = 0;
    /* O_NONBLOCK: a FIFO put where an image was must not hang verify. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (!(ctx = imgpack__sha256_begin())) {
        close(fd);
        return ENOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        imgpack__sha256_update(ctx, chunk, (size_t)n);
    }
    /* Ending frees the context; a failed read leaves `hex` unused. */
    imgpack__sha256_end(ctx, hex);
    close(fd);
    return err;
}

void imgpack__verify_sources(imgpack__verify *v) {
    sqlite3_stmt *stmt = NULL;
    char *path = NULL;
    size_t capacity = 0;
    int rc;
    if (!v->db)
        return; /* already reported: without a catalog no hashes exist */
    imgpack__verify_set_phase(v, IMGPACK__VERIFY_SOURCES);
    if (!(stmt = imgpack__verify_prepare(
              v, "SELECT idx, path, sha256 FROM images"
                 " WHERE idx >= 0 AND idx < ? ORDER BY idx")))
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)v->count);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(stmt, 0);
        const char *relative = (const char *)sqlite3_column_text(stmt, 1);
        const char *want = (const char *)sqlite3_column_text(stmt, 2);
        char hex[IMGPACK__SHA256_HEX];
        if (!relative)
            relative = "";
        size_t need = strlen(v->sources) + strlen(relative) + 2;
        if (need > capacity) {
            char *bigger = realloc(path, need);
            if (!bigger) {
                imgpack__verify_problem(v, IMGPACK_PROBLEM_SOURCE,
                                        IMGPACK_PROBLEM_NO_RECORD,
                                        "source: out of memory");
                break;
            }
            path = bigger;
            capacity = need;
        }
        snprintf(path, capacity, "%s/%s", v->sources, relative);
        int err = hash_file(path, hex);
        if (err != 0)
            imgpack__verify_problem(v, IMGPACK_PROBLEM_SOURCE, (uint64_t)idx,
                                    "record %" PRId64 ": source %s: %s", idx,
                                    path, strerror(err));
        else if (!want || strcmp(hex, want) != 0)
            imgpack__verify_problem(v, IMGPACK_PROBLEM_SOURCE, (uint64_t)idx,
                                    "record %" PRId64 ": source %s has "
                                    "changed: sha256 %s, the catalog says %s",
                                    idx, path, hex, want ? want : "nothing");
    }
    if (rc == SQLITE_ROW)
        sqlite3_finalize(stmt); /* stopped early, already reported */
    else
        imgpack__verify_finish(v, stmt, rc);
    free(path);
}
