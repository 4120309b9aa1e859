/*
 * The compressed-archive reader thread: members come out in listing order
 * whatever their order in the stream, held memory stays within the limit,
 * and an archive too far out of order for the limit fails with a reason
 * instead of waiting forever.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <unistd.h>

#include "archive_stream.h"
#include "check.h"
#include "sources.h"

#define MEMBERS 12
#define MEMBER_BYTES 1000

/* Writes a gzip tar with class "c" members m00.jpg .. m11.jpg, in reverse
   order when `reversed`; member i's bytes are all i. */
static void write_archive(const char *path, int reversed) {
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    char data[MEMBER_BYTES], name[32];
    CHECK(a && e);
    archive_write_add_filter_gzip(a);
    archive_write_set_format_ustar(a);
    CHECK_EQ(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int k = 0; k < MEMBERS; k++) {
        int i = reversed ? MEMBERS - 1 - k : k;
        snprintf(name, sizeof name, "c/m%02d.jpg", i);
        memset(data, i, sizeof data);
        archive_entry_clear(e);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, sizeof data);
        CHECK_EQ(archive_write_header(a, e), ARCHIVE_OK);
        CHECK_EQ(archive_write_data(a, data, sizeof data), MEMBER_BYTES);
    }
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
}

/* Lists `path`, streams it holding at most `held` bytes, and takes every
   member in order; returns how many came out right. */
static uint64_t stream_all(const char *path, size_t held, imgpack__error *err) {
    imgpack__source src;
    imgpack__archive_stream *s;
    uint8_t *buffer = NULL;
    size_t capacity = 0, size;
    char reason[IMGPACK__REASON_SIZE];
    uint64_t good = 0;
    CHECK_OK(imgpack__source_scan_archive(path, &src, err));
    CHECK(src.ops == &imgpack__source_tar_stream);
    CHECK_EQ(src.num_items, MEMBERS);
    CHECK_OK(
        imgpack__archive_stream_start(&s, &src, 0, src.num_items, held, err));
    src.stream = s;
    for (uint64_t p = 0; p < src.num_items; p++) {
        if (imgpack__archive_stream_take(s, p, &buffer, &capacity, &size,
                                         reason) != IMGPACK_OK)
            continue;
        CHECK_EQ(size, MEMBER_BYTES);
        CHECK_EQ(buffer[0], p); /* listing order: m00 first */
        CHECK_EQ(buffer[size - 1], p);
        good++;
    }
    imgpack__error_clear(err);
    imgpack__archive_stream_stop(s, err);
    src.stream = NULL;
    imgpack__source_free(&src);
    free(buffer);
    return good;
}

int main(void) {
    char dir[] = "/tmp/imgpack-test-stream-XXXXXX", path[64];
    imgpack__error err;
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.tar.gz", dir);

    /* In order: one member held at a time is enough. */
    write_archive(path, 0);
    CHECK_EQ(stream_all(path, MEMBER_BYTES, &err), MEMBERS);
    CHECK_EQ(err.code, IMGPACK_OK);

    /* Reversed: fine when everything fits... */
    write_archive(path, 1);
    CHECK_EQ(stream_all(path, MEMBERS * MEMBER_BYTES, &err), MEMBERS);
    CHECK_EQ(err.code, IMGPACK_OK);
    /* ...and a clear failure, not a hang, when it cannot. */
    CHECK(stream_all(path, 3 * MEMBER_BYTES, &err) < MEMBERS);
    CHECK_EQ(err.code, IMGPACK_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "too far out of order") != NULL);

    unlink(path);
    rmdir(dir);
    printf("archive_stream: ok\n");
    return 0;
}
