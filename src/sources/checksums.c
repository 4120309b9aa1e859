/*
 * Checking source files against a sha256sum-style list before packing, so
 * a corrupted download is refused before anything is written. Lines are
 * "<64 hex digits>  <path>" (or " *<path>", sha256sum's binary mode); paths
 * are relative to the directory of the list, as `sha256sum -c` run there.
 */
#include "checksums.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "sources.h"

/* Files are hashed in pieces of this size: memory stays small for the
   multi-gigabyte archives this is meant for. */
#define HASH_CHUNK ((size_t)1 << 20)

/* Hashes the file at `path`; -1 with errno set when it cannot be read,
   -2 when it is not a regular file. Opened with O_NONBLOCK, so that a FIFO
   listed cannot hold the pack. */
static int hash_file(const char *path, unsigned char *buffer, char hex[65]) {
    size_t n;
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f;
    imgpack__sha256 *ctx;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        int failed = errno;
        close(fd);
        errno = failed;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -2;
    }
    if (!(f = fdopen(fd, "rb"))) {
        close(fd);
        return -1;
    }
    if (!(ctx = imgpack__sha256_begin())) {
        fclose(f);
        errno = ENOMEM;
        return -1;
    }
    while ((n = fread(buffer, 1, HASH_CHUNK, f)) > 0)
        imgpack__sha256_update(ctx, buffer, n);
    int failed = ferror(f);
    fclose(f);
    imgpack__sha256_end(ctx, hex);
    return failed ? -1 : 0;
}

imgpack_status imgpack__verify_checksums(const char *sums_path,
                                         imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    char *line = NULL, *dir = strdup(sums_path), *slash;
    unsigned char *buffer = malloc(HASH_CHUNK);
    size_t capacity = 0, number = 0;
    FILE *f = fopen(sums_path, "r");
    if (!f || !dir || !buffer) {
        status =
            !f ? imgpack__error_set(err, imgpack__status_from_errno(errno),
                                    "%s: cannot open: %s", sums_path,
                                    strerror(errno))
               : imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    else
        dir[0] = '\0';
    for (ssize_t n;
         status == IMGPACK_OK && (n = getline(&line, &capacity, f)) > 0;) {
        char path[4096], hex[65];
        number++;
        n = imgpack__chomp(line, n);
        if (n == 0)
            continue;
        if (n < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
            status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                        "%s: line %zu: expected "
                                        "'<sha256>  <file>'",
                                        sums_path, number);
            break;
        }
        snprintf(path, sizeof path, "%s%s", line[66] == '/' ? "" : dir,
                 line + 66);
        int hashed = hash_file(path, buffer, hex);
        if (hashed == -2)
            status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                        "%s: listed in %s, but not a "
                                        "regular file",
                                        path, sums_path);
        else if (hashed != 0)
            status = imgpack__error_set(err, imgpack__status_from_errno(errno),
                                        "%s: cannot read it to check its "
                                        "SHA-256: %s",
                                        path, strerror(errno));
        else if (strncasecmp(hex, line, 64) != 0)
            status = imgpack__error_set(err, IMGPACK_ERR_CORRUPT,
                                        "%s: SHA-256 is %s, %s says %.64s",
                                        path, hex, sums_path, line);
    }
out:
    if (f)
        fclose(f);
    free(line);
    free(dir);
    free(buffer);
    return status;
}
