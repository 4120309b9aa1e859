/*
 * The archive walker. Seekable walks read an uncompressed tar through
 * callbacks over a region of the file, so inner tars are walked in place
 * and libarchive skips member data by seeking; a member's data offset is
 * what libarchive has consumed once its headers are read. Streaming walks
 * read any archive libarchive knows (gzip, bzip2, xz, zstd) front to back;
 * an inner tar is then read from the outer archive's data as it passes.
 */
#include "archive_walk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources.h"

/* libarchive reads this much per call from the file or the outer data. */
#define READ_BLOCK ((size_t)64 << 10)

/* Where an archive's bytes come from: a region of the file (seekable), or
   the data of a member of an enclosing archive (streaming). */
typedef struct input {
    int fd;
    uint64_t start, size, position;
    struct archive *outer;
    uint8_t *buffer;
    const imgpack__libarchive *la;
} input;

static la_ssize_t input_read(struct archive *a, void *data,
                             const void **block) {
    input *in = data;
    const imgpack__libarchive *la = in->la;
    la_ssize_t n;
    if (in->outer) {
        n = la->archive_read_data(in->outer, in->buffer, READ_BLOCK);
        if (n < 0)
            la->archive_set_error(a, la->archive_errno(in->outer), "%s",
                                  la->archive_error_string(in->outer));
    } else {
        uint64_t left = in->size - in->position;
        size_t want = left < READ_BLOCK ? (size_t)left : READ_BLOCK;
        n = want ? pread(in->fd, in->buffer, want,
                         (off_t)(in->start + in->position))
                 : 0;
        if (n < 0)
            la->archive_set_error(a, errno, "%s", strerror(errno));
        else
            in->position += (uint64_t)n;
    }
    *block = in->buffer;
    return n;
}

static la_int64_t input_seek(struct archive *a, void *data, la_int64_t offset,
                             int whence) {
    input *in = data;
    int64_t base = whence == SEEK_SET   ? 0
                   : whence == SEEK_CUR ? (int64_t)in->position
                                        : (int64_t)in->size;
    (void)a;
    if (base + offset < 0 || (uint64_t)(base + offset) > in->size)
        return ARCHIVE_FATAL;
    in->position = (uint64_t)(base + offset);
    return (la_int64_t)in->position;
}

static la_int64_t input_skip(struct archive *a, void *data,
                             la_int64_t request) {
    input *in = data;
    uint64_t left = in->size - in->position;
    uint64_t n = (uint64_t)request < left ? (uint64_t)request : left;
    (void)a;
    in->position += n;
    return (la_int64_t)n;
}

static void note_damage(imgpack__archive_walk *w, struct archive *a,
                        const char *what) {
    const char *reason = w->la->archive_error_string(a);
    if (w->damage)
        return;
    if (asprintf(&w->damage, "%s: %s", what,
                 reason ? reason : "unreadable header") < 0)
        w->damage = NULL;
}

/* Walks one archive level; `class_name` is set inside an inner tar. */
static imgpack_status walk(imgpack__archive_walk *w, input *in,
                           const char *class_name, imgpack__error *err) {
    const imgpack__libarchive *la = w->la;
    imgpack_status status = IMGPACK_OK;
    struct archive *a = la->archive_read_new();
    struct archive_entry *entry;
    int rc = ARCHIVE_EOF;

    in->buffer = malloc(READ_BLOCK);
    if (!a || !in->buffer) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    la->archive_read_support_format_tar(a);
    if (!w->seekable)
        la->archive_read_support_filter_all(a);
    la->archive_read_set_read_callback(a, input_read);
    if (w->seekable) {
        la->archive_read_set_seek_callback(a, input_seek);
        la->archive_read_set_skip_callback(a, input_skip);
    }
    la->archive_read_set_callback_data(a, in);
    if (la->archive_read_open1(a) != ARCHIVE_OK) {
        note_damage(w, a, "archive unreadable");
        goto out;
    }
    while (!w->stopped &&
           ((rc = la->archive_read_next_header(a, &entry)) == ARCHIVE_OK ||
            rc == ARCHIVE_WARN)) {
        const char *name = la->archive_entry_pathname(entry);
        uint64_t size = (uint64_t)la->archive_entry_size(entry);
        imgpack__archive_member m = {.size = size, .data = a, .la = la};
        char cls[4096], shown[4096];
        if (la->archive_entry_filetype(entry) != AE_IFREG || !name)
            continue;
        if (w->seekable) {
            /* libarchive has consumed exactly the headers: the data
               starts here. Past the region's end, the archive is cut. */
            m.offset = in->start + (uint64_t)la->archive_filter_bytes(a, 0);
            if (m.offset + size > in->start + in->size) {
                if (!w->damage && asprintf(&w->damage,
                                           "archive cut short in %s at byte "
                                           "%" PRIu64,
                                           name, in->start + in->size) < 0)
                    w->damage = NULL;
                goto out;
            }
        }
        while (name[0] == '.' && name[1] == '/')
            name += 2;
        const char *slash = strchr(name, '/');
        if (!class_name && !slash && imgpack__ends_with(name, ".tar")) {
            input inner = {in->fd, m.offset, size, 0, w->seekable ? NULL : a,
                           NULL,   la};
            snprintf(cls, sizeof cls, "%.*s", (int)(strlen(name) - 4), name);
            status = walk(w, &inner, cls, err);
            free(inner.buffer);
            if (status != IMGPACK_OK)
                goto out;
            continue;
        }
        if (!imgpack__is_image_name(name) || (!class_name && !slash)) {
            w->skipped++;
            continue;
        }
        if (class_name) {
            snprintf(shown, sizeof shown, "%s.tar/%s", class_name, name);
            m.class_name = class_name;
            m.shown = shown;
            m.within = name;
        } else {
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - name), name);
            m.class_name = cls;
            m.shown = name;
            m.within = slash + 1;
        }
        m.sequence = w->sequence++;
        if (w->visit(w->user, &m))
            w->stopped = 1;
    }
    if (!w->stopped && rc != ARCHIVE_EOF)
        note_damage(w, a,
                    class_name ? "inner archive damaged" : "archive damaged");
out:
    if (a)
        la->archive_read_free(a);
    return status;
}

imgpack_status imgpack__archive_walk_run(imgpack__archive_walk *w,
                                         imgpack__error *err) {
    imgpack_status status = imgpack__libarchive_load(&w->la, err);
    if (status != IMGPACK_OK)
        return status;
    input in = {.fd = w->fd, .la = w->la};
    off_t size = lseek(w->fd, 0, SEEK_END);
    if (size < 0)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: %s", w->path, strerror(errno));
    in.size = (uint64_t)size;
    status = walk(w, &in, NULL, err);
    free(in.buffer);
    return status;
}
