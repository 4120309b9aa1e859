/*
 * The folder kind of source, and what every kind shares (the open that
 * picks one, items, class tables, the listing's digest, reading files).
 *
 * An ImageFolder tree is listed the way torchvision does it.
 *
 * torchvision's order: classes are the first-level directories (symlinks
 * followed) sorted by name; within a class, `sorted(os.walk(dir,
 * followlinks=True))` orders the directories by their full path string, and
 * each directory's files are sorted by name. So a class's own files come
 * before any subdirectory's, and "a b/" sorts before "a/" (' ' < '/').
 * We sort by bytes, which is Python's code point order for UTF-8 names.
 *
 * Unlike os.walk, a directory that is its own ancestor (a symlink loop) is
 * skipped and counted instead of being walked until the path is too long.
 */
#include "sources.h"


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"

/* Deeper trees than this are refused rather than risking the stack. */
#define MAX_DEPTH 64

typedef struct string_list {
    char **items;
    size_t count, capacity;
} string_list;

static int list_push(string_list *l, char *s) {
    if (!s)
        return -1;
    if (l->count == l->capacity) {
        size_t cap = l->capacity ? l->capacity * 2 : 64;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            free(s);
            return -1;
        }
        l->items = items;
        l->capacity = cap;
    }
    l->items[l->count++] = s;
    return 0;
}

static void list_free(string_list *l) {
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_sort(string_list *l) {
    /* An empty list has no array yet, and qsort's may not be NULL. */
    if (l->count > 1)
        qsort(l->items, l->count, sizeof *l->items, compare_strings);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

int imgpack__ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int imgpack__is_image_name(const char *name) {
    static const char *const extensions[] = {".jpg", ".jpeg", ".png", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof extensions / sizeof *extensions; i++) {
        size_t e = strlen(extensions[i]);
        if (n > e && strcasecmp(name + n - e, extensions[i]) == 0)
            return 1;
    }
    return 0;
}

/* Whether a directory entry is a directory, following symlinks. */
static int is_directory(const char *dir, const struct dirent *entry) {
    if (entry->d_type == DT_DIR)
        return 1;
    if (entry->d_type != DT_LNK && entry->d_type != DT_UNKNOWN)
        return 0;
    char *path = join(dir, entry->d_name);
    struct stat st;
    int result = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return result;
}

/* A directory of the class being walked and the image files right in it. */
typedef struct dir_files {
    char *rel;
    string_list files;
} dir_files;

typedef struct walk_state {
    const char *root;
    imgpack__source *src;
    imgpack__error *err;
    dir_files *dirs; /* every directory of the class, in the order met */
    size_t dir_count, dir_capacity;
    /* The directories above the one being walked; [0] is the root, so a
       link back to it (or to any class) counts as a loop too. */
    struct stat ancestors[MAX_DEPTH];
} walk_state;

static void free_dirs(walk_state *w) {
    for (size_t i = 0; i < w->dir_count; i++) {
        free(w->dirs[i].rel);
        list_free(&w->dirs[i].files);
    }
    free(w->dirs);
    w->dirs = NULL;
    w->dir_count = w->dir_capacity = 0;
}

/* Adds directory `rel` (taken) to w->dirs; its index, or -1. */
static long push_dir(walk_state *w, char *rel) {
    if (!rel)
        return -1;
    if (w->dir_count == w->dir_capacity) {
        size_t cap = w->dir_capacity ? w->dir_capacity * 2 : 16;
        dir_files *dirs = realloc(w->dirs, cap * sizeof *dirs);
        if (!dirs) {
            free(rel);
            return -1;
        }
        w->dirs = dirs;
        w->dir_capacity = cap;
    }
    w->dirs[w->dir_count] = (dir_files){rel, {0}};
    return (long)w->dir_count++;
}

/*
 * Reads directory `rel` once: its image files go to its w->dirs entry, the
 * other files are counted as skipped, and its subdirectories are walked
 * the same way after it.
 */
static imgpack_status walk_dir(walk_state *w, const char *rel, int depth) {
    imgpack_status status = IMGPACK_OK;
    char *abs = join(w->root, rel);
    string_list subdirs = {0};
    DIR *d = NULL;
    struct stat st;
    long k;

    if (!abs)
        return imgpack__error_set(w->err, IMGPACK_ERR_NOMEM, "out of memory");
    if (stat(abs, &st) != 0)
        goto out; /* vanished or dangling: os.walk skips it too */
    for (int i = 0; i < depth; i++) {
        if (w->ancestors[i].st_dev == st.st_dev &&
            w->ancestors[i].st_ino == st.st_ino) {
            w->src->loops++;
            goto out;
        }
    }
    if (depth >= MAX_DEPTH) {
        status = imgpack__error_set(w->err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: directories nested deeper than %d",
                                    abs, MAX_DEPTH);
        goto out;
    }
    w->ancestors[depth] = st;
    d = opendir(abs);
    if (!d)
        goto out; /* os.walk ignores unreadable directories as well */
    if ((k = push_dir(w, strdup(rel))) < 0) {
        status = IMGPACK_ERR_NOMEM;
        goto out;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL && status == IMGPACK_OK;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (is_directory(abs, e)) {
            if (list_push(&subdirs, join(rel, e->d_name)) != 0)
                status = IMGPACK_ERR_NOMEM;
        } else if (!imgpack__is_image_name(e->d_name)) {
            w->src->skipped++;
        } else if (list_push(&w->dirs[k].files, strdup(e->d_name)) != 0) {
            status = IMGPACK_ERR_NOMEM;
        }
    }
    closedir(d);
    d = NULL;
    for (size_t i = 0; i < subdirs.count && status == IMGPACK_OK; i++)
        status = walk_dir(w, subdirs.items[i], depth + 1);
out:
    if (status == IMGPACK_ERR_NOMEM)
        status = imgpack__error_set(w->err, status, "%s: out of memory", abs);
    if (d)
        closedir(d);
    list_free(&subdirs);
    free(abs);
    return status;
}

static int compare_dirs(const void *a, const void *b) {
    return strcmp(((const dir_files *)a)->rel, ((const dir_files *)b)->rel);
}

/* Walks class `class_id` and lists its images in torchvision's order:
   directories by path, files by name within each. */
static imgpack_status list_class(walk_state *w, uint32_t class_id,
                                 size_t *capacity) {
    imgpack_status status =
        walk_dir(w, w->src->class_names[class_id], 1);
    qsort(w->dirs, w->dir_count, sizeof *w->dirs, compare_dirs);
    for (size_t i = 0; i < w->dir_count && status == IMGPACK_OK; i++) {
        string_list *files = &w->dirs[i].files;
        list_sort(files);
        for (size_t f = 0; f < files->count && status == IMGPACK_OK; f++)
            if (imgpack__source_add_item(w->src,
                                         join(w->dirs[i].rel, files->items[f]),
                                         class_id, capacity) != IMGPACK_OK)
                status = imgpack__error_set(w->err, IMGPACK_ERR_NOMEM,
                                            "out of memory");
    }
    free_dirs(w);
    return status;
}

imgpack_status imgpack__source_add_item(imgpack__source *src, char *path,
                                        uint32_t class_id, size_t *capacity) {
    if (!path)
        return IMGPACK_ERR_NOMEM;
    if (src->num_items == *capacity) {
        size_t cap = *capacity ? *capacity * 2 : 1024;
        imgpack__source_item *items =
            realloc(src->items, cap * sizeof *items);
        if (!items) {
            free(path);
            return IMGPACK_ERR_NOMEM;
        }
        src->items = items;
        *capacity = cap;
    }
    src->items[src->num_items] =
        (imgpack__source_item){.path = path, .class_id = class_id};
    src->num_items++;
    return IMGPACK_OK;
}

/* Counts the plain files directly in the root: they belong to no class. */
static void count_loose_files(const char *root, DIR *d, imgpack__source *src) {
    rewinddir(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !is_directory(root, e))
            src->skipped++;
}

static int claims_folder(const imgpack__source_request *request) {
    return request->is_dir && !request->list;
}

static imgpack_status open_folder(const imgpack__source_request *request,
                                  imgpack__source *src, imgpack__error *err) {
    const char *root = request->path;
    imgpack_status status = IMGPACK_OK;
    walk_state w = {.root = root, .src = src, .err = err};
    string_list classes = {0};
    size_t capacity = 0;
    DIR *d;

    memset(src, 0, sizeof *src);
    src->ops = &imgpack__source_folder;
    d = opendir(root);
    if (!d || stat(root, &w.ancestors[0]) != 0) {
        if (d)
            closedir(d);
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open the source directory: %s",
                                  root, strerror(errno));
    }
    src->root = strdup(root);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            !is_directory(root, e))
            continue;
        if (list_push(&classes, strdup(e->d_name)) != 0) {
            status = IMGPACK_ERR_NOMEM;
            break;
        }
    }
    count_loose_files(root, d, src);
    closedir(d);
    if (status != IMGPACK_OK || !src->root) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (classes.count == 0) {
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: no class directories: expected the "
                                    "ImageFolder layout ROOT/CLASS/IMAGE",
                                    root);
        goto out;
    }
    list_sort(&classes);
    src->num_classes = (uint32_t)classes.count;
    src->class_names = classes.items;
    src->class_descriptions = calloc(classes.count, sizeof(char *));
    classes = (string_list){0};
    if (!src->class_descriptions) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t c = 0; c < src->num_classes && status == IMGPACK_OK; c++)
        status = list_class(&w, c, &capacity);
out:
    list_free(&classes);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
}

int imgpack__grow_buffer(uint8_t **buffer, size_t *capacity, size_t size) {
    if (size <= *capacity)
        return 0;
    uint8_t *bigger = realloc(*buffer, size);
    if (!bigger)
        return -1;
    *buffer = bigger;
    *capacity = size;
    return 0;
}

void imgpack__item_buffer_free(imgpack__item_buffer *buffer) {
    free(buffer->bytes);
    free(buffer->path);
    memset(buffer, 0, sizeof *buffer);
}

/* Reads the whole file into buffer->bytes. O_NONBLOCK so that a FIFO
   named like an image cannot stall a worker; it is then refused as not a
   file. */
imgpack_status imgpack__source_read_file(const imgpack__source *src,
                                         size_t index,
                                         imgpack__item_buffer *buffer,
                                         imgpack__item_data *out,
                                         char reason[IMGPACK__REASON_SIZE]) {
    imgpack_status status = IMGPACK_OK;
    const char *relative = src->items[index].path;
    struct stat st;
    size_t length = strlen(src->root) + strlen(relative) + 2;
    if (imgpack__grow_buffer((uint8_t **)&buffer->path, &buffer->path_capacity,
                             length) != 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "out of memory");
        return IMGPACK_ERR_NOMEM;
    }
    snprintf(buffer->path, length, "%s/%s", src->root, relative);
    int fd = open(buffer->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        snprintf(reason, IMGPACK__REASON_SIZE, "cannot open: %s",
                 strerror(error));
        return imgpack__status_from_errno(error);
    }
    if (fstat(fd, &st) != 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "cannot stat: %s",
                 strerror(errno));
        status = IMGPACK_ERR_IO;
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(reason, IMGPACK__REASON_SIZE, "not a regular file");
        status = IMGPACK_ERR_UNSUPPORTED;
    } else if ((uint64_t)st.st_size > IMGPACK__MAX_FILE_BYTES) {
        snprintf(reason, IMGPACK__REASON_SIZE,
                 "file is larger than the 1 GiB limit");
        status = IMGPACK_ERR_TOO_LARGE;
    } else if (imgpack__grow_buffer(&buffer->bytes, &buffer->capacity,
                                    (size_t)st.st_size + 1) != 0) {
        snprintf(reason, IMGPACK__REASON_SIZE, "out of memory");
        status = IMGPACK_ERR_NOMEM;
    }
    size_t done = 0;
    while (status == IMGPACK_OK && done < (size_t)st.st_size) {
        ssize_t n = read(fd, buffer->bytes + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(reason, IMGPACK__REASON_SIZE, "read error: %s",
                     n < 0 ? strerror(errno) : "file shrank");
            status = IMGPACK_ERR_IO;
        } else {
            done += (size_t)n;
        }
    }
    close(fd);
    out->data = buffer->bytes;
    out->size = status == IMGPACK_OK ? done : 0;
    return status;
}

const imgpack__source_ops imgpack__source_folder = {
    .claims = claims_folder,
    .open = open_folder,
    .read = imgpack__source_read_file,
};

imgpack_status imgpack__source_open(imgpack__source_request *request,
                                    imgpack__source *src,
                                    imgpack__error *err) {
    /* In the order they are tried: --list makes a directory a list's root. */
    static const imgpack__source_ops *const kinds[] = {
        &imgpack__source_list, &imgpack__source_folder, &imgpack__source_tar,
        &imgpack__source_idx,  &imgpack__source_csv,
    };
    const char *path = request->path;
    struct stat st;
    if (stat(path, &st) != 0)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "%s: neither a directory nor a regular "
                                  "file",
                                  path);
    request->is_dir = S_ISDIR(st.st_mode);
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        if (kinds[k]->claims(request))
            return kinds[k]->open(request, src, err);
    return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                              "%s: not a directory, an IDX images file "
                              "(*-images-idx3-ubyte[.gz]) or an MNIST "
                              "CSV (*.csv)",
                              path);
}

imgpack_status imgpack__source_start(imgpack__source *src, uint64_t first,
                                     uint64_t end, imgpack__error *err) {
    return src->ops->start ? src->ops->start(src, first, end, err)
                           : IMGPACK_OK;
}

void imgpack__source_stop(imgpack__source *src, imgpack__error *err) {
    if (src->ops && src->ops->stop)
        src->ops->stop(src, err);
}

static int find_class(const imgpack__source *src, const char *name) {
    char *const *found = bsearch(&name, src->class_names, src->num_classes,
                                 sizeof *src->class_names, compare_strings);
    return found ? (int)(found - src->class_names) : -1;
}

imgpack_status imgpack__source_load_synsets(imgpack__source *src,
                                            const char *path,
                                            imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    char *line = NULL;
    size_t line_capacity = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open the synsets file: %s", path,
                                  strerror(errno));
    for (ssize_t n; (n = getline(&line, &line_capacity, f)) > 0;) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *space = strchr(line, ' ');
        if (!space)
            continue;
        *space = '\0';
        int c = find_class(src, line);
        if (c < 0)
            continue;
        free(src->class_descriptions[c]);
        src->class_descriptions[c] = strdup(space + 1);
        if (!src->class_descriptions[c]) {
            status = imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                        "out of memory");
            break;
        }
    }
    if (status == IMGPACK_OK && ferror(f))
        status = imgpack__error_set(err, IMGPACK_ERR_IO, "%s: read error",
                                    path);
    free(line);
    fclose(f);
    return status;
}

imgpack_status imgpack__source_set_class_names(imgpack__source *src,
                                              const char *const *names,
                                              uint32_t count,
                                              imgpack__error *err) {
    char **table = calloc(count ? count : 1, sizeof *table);
    char **descriptions = calloc(count ? count : 1, sizeof *descriptions);
    imgpack_status status = table && descriptions ? IMGPACK_OK
                                                  : IMGPACK_ERR_NOMEM;
    for (uint32_t c = 0; c < count && status == IMGPACK_OK; c++)
        if (!(table[c] = strdup(names[c])))
            status = IMGPACK_ERR_NOMEM;
    if (status != IMGPACK_OK) {
        for (uint32_t c = 0; table && c < count; c++)
            free(table[c]);
        free(table);
        free(descriptions);
        return imgpack__error_set(err, status, "out of memory");
    }
    for (uint32_t c = 0; c < src->num_classes; c++) {
        free(src->class_names[c]);
        free(src->class_descriptions[c]);
    }
    free(src->class_names);
    free(src->class_descriptions);
    src->class_names = table;
    src->class_descriptions = descriptions;
    src->num_classes = count;
    return IMGPACK_OK;
}

imgpack_status imgpack__source_read_class_names(imgpack__source *src,
                                               const char *path,
                                               imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    string_list names = {0};
    char *line = NULL;
    size_t capacity = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open the class names: %s", path,
                                  strerror(errno));
    for (ssize_t n; (n = getline(&line, &capacity, f)) > 0;) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0 && list_push(&names, strdup(line)) != 0) {
            status = imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                        "out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    if (status == IMGPACK_OK && names.count < src->num_classes)
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: names %zu classes, the labels go up "
                                    "to %u",
                                    path, names.count, src->num_classes - 1);
    if (status == IMGPACK_OK)
        status = imgpack__source_set_class_names(
            src, (const char *const *)names.items, (uint32_t)names.count, err);
    list_free(&names);
    return status;
}

void imgpack__source_digest(const imgpack__source *src, char hex[65]) {
    imgpack__sha256 *ctx = imgpack__sha256_begin();
    char label[16];
    if (!ctx) {
        hex[0] = '\0'; /* no digest then: a resume will refuse, not guess */
        return;
    }
    /* NUL-terminated fields keep "ab"+"c" apart from "a"+"bc". */
    for (uint32_t c = 0; c < src->num_classes; c++)
        imgpack__sha256_update(ctx, src->class_names[c],
                               strlen(src->class_names[c]) + 1);
    for (size_t i = 0; i < src->num_items; i++) {
        imgpack__sha256_update(ctx, src->items[i].path,
                               strlen(src->items[i].path) + 1);
        snprintf(label, sizeof label, "%u", (unsigned)src->items[i].class_id);
        imgpack__sha256_update(ctx, label, strlen(label) + 1);
    }
    imgpack__sha256_end(ctx, hex);
}

void imgpack__source_free(imgpack__source *src) {
    for (uint32_t c = 0; c < src->num_classes; c++) {
        free(src->class_names[c]);
        if (src->class_descriptions)
            free(src->class_descriptions[c]);
    }
    free(src->class_names);
    free(src->class_descriptions);
    for (size_t i = 0; i < src->num_items; i++) {
        free(src->items[i].path);
        free(src->items[i].reject);
    }
    free(src->items);
    free(src->root);
    if (src->ops && src->ops->close)
        src->ops->close(src);
    memset(src, 0, sizeof *src);
}
