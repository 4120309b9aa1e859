/*
 * Tar archives as sources, never extracted.
 *
 * One walk over the archive (archive_walk.c) lists every image member; the
 * listing is then ordered exactly as the folder walk orders the extracted
 * tree, so both pack the same records. An uncompressed tar is read in
 * place: its members' data offsets are recorded and workers pread them, in
 * any order and in parallel. A compressed one cannot be read out of order:
 * its items keep their place in the stream, and while packing a reader
 * thread streams it once more (archive_stream.c).
 *
 * A damaged archive (cut short, a broken header) keeps what was listed
 * before the damage and adds one reject saying where reading stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_walk.h"
#include "sources.h"

/* One member found by the listing, before classes are numbered. */
typedef struct member {
    char *class_name;
    char *path;     /* as the catalog shows it */
    char *sort_dir; /* directory within the class, for ImageFolder order */
    const char *sort_name;
    uint64_t offset, size; /* offset: file offset, or stream sequence */
} member;

typedef struct members {
    member *items;
    size_t count, capacity;
    int failed; /* out of memory */
    int seekable;
} members;

static int push(members *m, member item) {
    member *items = imgpack__grow_array(m->items, m->count, &m->capacity,
                                        sizeof *items, 4096);
    if (!items)
        return -1;
    m->items = items;
    m->items[m->count++] = item;
    return 0;
}

/* The listing's visitor: records the member and its place. */
static int record_member(void *user, const imgpack__archive_member *am) {
    members *m = user;
    member item = {strdup(am->class_name),
                   strdup(am->shown),
                   strdup(am->within),
                   NULL,
                   m->seekable ? am->offset : am->sequence,
                   am->size};
    if (!item.class_name || !item.path || !item.sort_dir ||
        push(m, item) != 0) {
        free(item.class_name);
        free(item.path);
        free(item.sort_dir);
        m->failed = 1;
        return 1;
    }
    /* The folder walk orders a class by directory, then file name: keep
       the directory in sort_dir and point sort_name at the file name. */
    member *added = &m->items[m->count - 1];
    char *slash = strrchr(added->sort_dir, '/');
    if (slash)
        *slash = '\0';
    else
        added->sort_dir[0] = '\0';
    added->sort_name = strrchr(added->path, '/') + 1;
    return 0;
}

static int by_folder_order(const void *x, const void *y) {
    const member *a = x, *b = y;
    int c = strcmp(a->class_name, b->class_name);
    if (c == 0)
        c = strcmp(a->sort_dir, b->sort_dir);
    return c ? c : strcmp(a->sort_name, b->sort_name);
}

/* Numbers the classes in byte order and moves the members into `src`;
   the walk's damage, if any, becomes a last item that is a reject. */
static imgpack_status build(members *m, imgpack__archive_walk *w,
                            imgpack__source *src, imgpack__error *err) {
    size_t capacity = 0;
    qsort(m->items, m->count, sizeof *m->items, by_folder_order);
    src->class_names = calloc(m->count + 1, sizeof(char *));
    src->class_descriptions = calloc(m->count + 1, sizeof(char *));
    if (!src->class_names || !src->class_descriptions)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->count; i++) {
        member *item = &m->items[i];
        if (src->num_classes == 0 ||
            strcmp(src->class_names[src->num_classes - 1], item->class_name))
            src->class_names[src->num_classes++] = item->class_name;
        else
            free(item->class_name);
        item->class_name = NULL;
        if (imgpack__source_add_item(src, item->path, src->num_classes - 1,
                                     &capacity) != IMGPACK_OK)
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        src->items[src->num_items - 1].offset = item->offset;
        src->items[src->num_items - 1].size = item->size;
        item->path = NULL;
    }
    if (w->damage) {
        /* Listed last: what came before the damage packs as usual. */
        char *where = strdup("(where reading stopped)");
        if (!where || imgpack__source_add_item(src, where, IMGPACK__NO_CLASS,
                                               &capacity) != IMGPACK_OK)
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        src->items[src->num_items - 1].reject = w->damage;
        w->damage = NULL;
    }
    return IMGPACK_OK;
}

int imgpack__is_archive_name(const char *path) {
    static const char *const suffixes[] = {".tar",     ".tar.gz", ".tgz",
                                           ".tar.bz2", ".tar.xz", ".tar.zst"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (imgpack__ends_with(path, suffixes[i]))
            return 1;
    return 0;
}

imgpack_status imgpack__source_scan_archive(const char *path,
                                            imgpack__source *src,
                                            imgpack__error *err) {
    members found = {.seekable = imgpack__ends_with(path, ".tar")};
    imgpack__archive_walk w = {.path = path,
                               .seekable = found.seekable,
                               .visit = record_member,
                               .user = &found};
    imgpack_status status = IMGPACK_OK;

    memset(src, 0, sizeof *src);
    src->ops =
        found.seekable ? &imgpack__source_tar : &imgpack__source_tar_stream;
    src->archive_fd = w.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w.fd < 0) {
        status =
            imgpack__error_set(err, imgpack__status_from_errno(errno),
                               "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (!(src->root = strdup(path))) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    status = imgpack__archive_walk_run(&w, err);
    if (status == IMGPACK_OK && found.failed)
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (status == IMGPACK_OK)
        status = build(&found, &w, src, err);
    src->skipped = w.skipped;
    if (status == IMGPACK_OK && src->num_classes == 0)
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: no images in class directories or "
                                    "<class>.tar members",
                                    path);
out:
    for (size_t i = 0; i < found.count; i++) {
        free(found.items[i].class_name);
        free(found.items[i].path);
        free(found.items[i].sort_dir);
    }
    free(found.items);
    free(w.damage);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
}

static int claims_tar(const imgpack__source_request *request) {
    return !request->is_dir && imgpack__is_archive_name(request->path);
}

static imgpack_status open_tar(const imgpack__source_request *request,
                               imgpack__source *src, imgpack__error *err) {
    return imgpack__source_scan_archive(request->path, src, err);
}

/* A member's bytes: one pread, safe from any thread on the archive's
   shared descriptor. */
static imgpack_status read_member(const imgpack__source *src, size_t index,
                                  imgpack__item_buffer *buffer,
                                  imgpack__item_data *out,
                                  char reason[IMGPACK__REASON_SIZE]) {
    const imgpack__source_item *item = &src->items[index];
    if (item->size > IMGPACK__MAX_FILE_BYTES) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "file is larger than the 1 GiB limit");
        return IMGPACK_ERR_TOO_LARGE;
    }
    if (imgpack__grow_buffer(&buffer->bytes, &buffer->capacity,
                             item->size + 1) != 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "out of memory");
        return IMGPACK_ERR_NOMEM;
    }
    size_t done = 0;
    while (done < item->size) {
        ssize_t n = pread(src->archive_fd, buffer->bytes + done,
                          item->size - done, (off_t)(item->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(reason, IMGPACK__REASON_SIZE, "archive read error: %s",
                     n < 0 ? strerror(errno) : "archive shrank");
            return IMGPACK_ERR_IO;
        }
        done += (size_t)n;
    }
    out->data = buffer->bytes;
    out->size = done;
    return IMGPACK_OK;
}

void imgpack__source_close_archive(imgpack__source *src) {
    if (src->archive_fd >= 0)
        close(src->archive_fd);
    src->archive_fd = -1;
}

const imgpack__source_ops imgpack__source_tar = {
    .claims = claims_tar,
    .open = open_tar,
    .read = read_member,
    .close = imgpack__source_close_archive,
};
