/*
 * Tar archives as sources, read in place, never extracted.
 *
 * One pass over the headers (libarchive, skipping data by seeking) finds
 * every member's data: its offset and size in the archive file. Members of
 * an inner "<class>.tar" (ImageNet's train archive is a tar of 1000 such
 * tars) are found the same way inside the outer file's region for it. The
 * listing is then ordered exactly as the extracted tree would be by the
 * folder walk, and workers read each member with pread: in any order, in
 * parallel, with no copy of the archive anywhere. This needs an
 * uncompressed archive; compressed ones are refused with that reason.
 *
 * A damaged archive (cut short, a broken header) keeps what was listed
 * before the damage and adds one reject saying where reading stopped.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources.h"

/* libarchive reads this much per call from the file region. */
#define READ_BLOCK ((size_t)64 << 10)

/* One member found by the listing, before classes are numbered. */
typedef struct member {
    char *class_name;
    char *path;     /* as the catalog shows it */
    char *sort_dir; /* directory within the class, for ImageFolder order */
    const char *sort_name;
    uint64_t offset, size;
} member;

typedef struct members {
    member *items;
    size_t count, capacity;
} members;

/* A region of the archive file, read through libarchive's callbacks. */
typedef struct region {
    int fd;
    uint64_t start, size, position;
    uint8_t *buffer;
} region;

static la_ssize_t region_read(struct archive *a, void *data,
                              const void **block) {
    region *r = data;
    uint64_t left = r->size - r->position;
    size_t want = left < READ_BLOCK ? (size_t)left : READ_BLOCK;
    ssize_t n = want ? pread(r->fd, r->buffer, want,
                             (off_t)(r->start + r->position))
                     : 0;
    if (n < 0) {
        archive_set_error(a, errno, "%s", strerror(errno));
        return -1;
    }
    r->position += (uint64_t)n;
    *block = r->buffer;
    return n;
}

static la_int64_t region_seek(struct archive *a, void *data,
                              la_int64_t offset, int whence) {
    region *r = data;
    int64_t base = whence == SEEK_SET   ? 0
                   : whence == SEEK_CUR ? (int64_t)r->position
                                        : (int64_t)r->size;
    (void)a;
    if (base + offset < 0 || (uint64_t)(base + offset) > r->size)
        return ARCHIVE_FATAL;
    r->position = (uint64_t)(base + offset);
    return (la_int64_t)r->position;
}

static la_int64_t region_skip(struct archive *a, void *data,
                              la_int64_t request) {
    region *r = data;
    uint64_t left = r->size - r->position;
    uint64_t n = (uint64_t)request < left ? (uint64_t)request : left;
    (void)a;
    r->position += n;
    return (la_int64_t)n;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int push(members *m, member item) {
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? m->capacity * 2 : 4096;
        member *items = realloc(m->items, cap * sizeof *items);
        if (!items)
            return -1;
        m->items = items;
        m->capacity = cap;
    }
    m->items[m->count++] = item;
    return 0;
}

/* Records a member of class `class_name`: `shown` is its catalog path,
   `within` its path inside the class. */
static int add_member(members *m, const char *class_name, const char *shown,
                      const char *within, uint64_t offset, uint64_t size) {
    member item = {strdup(class_name), strdup(shown), strdup(within), NULL,
                   offset, size};
    if (!item.class_name || !item.path || !item.sort_dir ||
        push(m, item) != 0) {
        free(item.class_name);
        free(item.path);
        free(item.sort_dir);
        return -1;
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

typedef struct scan {
    const char *archive_path;
    int fd;
    members found;
    uint64_t skipped;
    char *damage; /* where and why reading stopped, or NULL */
    imgpack__error *err;
} scan;

/* Lists the tar in [start, start + size) of the file. `class_name` is NULL
   for the outer archive (classes come from paths or inner tars). */
static imgpack_status list_region(scan *s, uint64_t start, uint64_t size,
                                  const char *class_name) {
    imgpack_status status = IMGPACK_OK;
    region r = {s->fd, start, size, 0, malloc(READ_BLOCK)};
    struct archive *a = archive_read_new();
    struct archive_entry *entry;
    int rc;

    if (!a || !r.buffer) {
        status = imgpack__error_set(s->err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    archive_read_support_format_tar(a);
    archive_read_set_read_callback(a, region_read);
    archive_read_set_seek_callback(a, region_seek);
    archive_read_set_skip_callback(a, region_skip);
    archive_read_set_callback_data(a, &r);
    if (archive_read_open1(a) != ARCHIVE_OK) {
        rc = ARCHIVE_FATAL;
        goto damaged;
    }
    while ((rc = archive_read_next_header(a, &entry)) == ARCHIVE_OK ||
           rc == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(entry);
        /* After the headers, libarchive has consumed exactly up to the
           member's data: that is where it starts in the region. */
        uint64_t offset = start + (uint64_t)archive_filter_bytes(a, 0);
        uint64_t length = (uint64_t)archive_entry_size(entry);
        if (archive_entry_filetype(entry) != AE_IFREG || !name)
            continue;
        if (offset + length > start + size) {
            if (!s->damage &&
                asprintf(&s->damage, "archive cut short in %s at byte %" PRIu64,
                         name, start + size) < 0)
                s->damage = NULL;
            goto out;
        }
        while (name[0] == '.' && name[1] == '/')
            name += 2;
        const char *slash = strchr(name, '/');
        if (class_name) {
            if (imgpack__is_image_name(name)) {
                char shown[4096];
                snprintf(shown, sizeof shown, "%s.tar/%s", class_name, name);
                if (add_member(&s->found, class_name, shown, name, offset,
                               length) != 0)
                    goto nomem;
            } else {
                s->skipped++;
            }
        } else if (!slash && ends_with(name, ".tar")) {
            char inner[4096];
            snprintf(inner, sizeof inner, "%.*s", (int)(strlen(name) - 4),
                     name);
            if ((status = list_region(s, offset, length, inner)))
                goto out;
        } else if (slash && imgpack__is_image_name(name)) {
            char cls[4096];
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - name), name);
            if (add_member(&s->found, cls, name, slash + 1, offset, length) !=
                0)
                goto nomem;
        } else {
            s->skipped++;
        }
    }
    if (rc == ARCHIVE_EOF)
        goto out;
damaged:
    if (!s->damage &&
        asprintf(&s->damage, "archive damaged at byte %" PRIu64 ": %s",
                 start + (uint64_t)archive_filter_bytes(a, 0),
                 archive_error_string(a) ? archive_error_string(a)
                                         : "unreadable header") < 0)
        s->damage = NULL;
    goto out;
nomem:
    status = imgpack__error_set(s->err, IMGPACK_ERR_NOMEM, "out of memory");
out:
    if (a)
        archive_read_free(a);
    free(r.buffer);
    return status;
}

static int by_folder_order(const void *x, const void *y) {
    const member *a = x, *b = y;
    int c = strcmp(a->class_name, b->class_name);
    if (c == 0)
        c = strcmp(a->sort_dir, b->sort_dir);
    return c ? c : strcmp(a->sort_name, b->sort_name);
}

/* Numbers the classes in byte order and moves the members into `src`. */
static imgpack_status build(scan *s, imgpack__source *src) {
    size_t capacity = 0;
    members *m = &s->found;
    qsort(m->items, m->count, sizeof *m->items, by_folder_order);
    src->class_names = calloc(m->count + 1, sizeof(char *));
    src->class_descriptions = calloc(m->count + 1, sizeof(char *));
    if (!src->class_names || !src->class_descriptions)
        return imgpack__error_set(s->err, IMGPACK_ERR_NOMEM, "out of memory");
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
            return imgpack__error_set(s->err, IMGPACK_ERR_NOMEM,
                                      "out of memory");
        src->items[src->num_items - 1].offset = item->offset;
        src->items[src->num_items - 1].size = item->size;
        item->path = NULL;
    }
    if (s->damage) {
        /* Listed last: what came before the damage packs as usual. */
        char *where = strdup(s->archive_path);
        if (!where || imgpack__source_add_item(src, where, IMGPACK__NO_CLASS,
                                               &capacity) != IMGPACK_OK)
            return imgpack__error_set(s->err, IMGPACK_ERR_NOMEM,
                                      "out of memory");
        src->items[src->num_items - 1].reject = s->damage;
        s->damage = NULL;
    }
    return IMGPACK_OK;
}

int imgpack__is_archive_name(const char *path) {
    static const char *const suffixes[] = {".tar", ".tar.gz", ".tgz",
                                           ".tar.bz2", ".tar.xz", ".tar.zst"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (ends_with(path, suffixes[i]))
            return 1;
    return 0;
}

imgpack_status imgpack__source_scan_archive(const char *path,
                                            imgpack__source *src,
                                            imgpack__error *err) {
    scan s = {.archive_path = path, .err = err};
    imgpack_status status = IMGPACK_OK;
    off_t size;

    memset(src, 0, sizeof *src);
    src->kind = IMGPACK__SOURCE_ARCHIVE;
    src->archive_fd = -1;
    if (!ends_with(path, ".tar"))
        return imgpack__error_set(err, IMGPACK_ERR_UNSUPPORTED,
                                  "%s: compressed archives cannot be read in "
                                  "place yet: decompress it (e.g. gunzip) to "
                                  "a .tar first",
                                  path);
    s.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s.fd < 0 || (size = lseek(s.fd, 0, SEEK_END)) < 0) {
        status = imgpack__error_set(err, imgpack__status_from_errno(errno),
                                    "%s: cannot open: %s", path,
                                    strerror(errno));
        goto out;
    }
    src->archive_fd = s.fd;
    if (!(src->root = strdup(path))) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!(status = list_region(&s, 0, (uint64_t)size, NULL)))
        status = build(&s, src);
    src->skipped = s.skipped;
    if (status == IMGPACK_OK && src->num_classes == 0)
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: no images in class directories or "
                                    "<class>.tar members",
                                    path);
out:
    for (size_t i = 0; i < s.found.count; i++) {
        free(s.found.items[i].class_name);
        free(s.found.items[i].path);
        free(s.found.items[i].sort_dir);
    }
    free(s.found.items);
    free(s.damage);
    if (status != IMGPACK_OK) {
        if (src->archive_fd < 0 && s.fd >= 0)
            close(s.fd);
        imgpack__source_free(src);
    }
    return status;
}
