/*
 * The folder kind of source: an ImageFolder tree, listed the way
 * torchvision does it, its items read as files (the list kind reads its
 * files the same way).
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources.h"

/* Deeper trees than this are refused rather than risking the stack. */
#define MAX_DEPTH 64

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
    imgpack__strings files;
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
        imgpack__strings_free(&w->dirs[i].files);
    }
    free(w->dirs);
    w->dirs = NULL;
    w->dir_count = w->dir_capacity = 0;
}

/* Adds directory `rel` (taken) to w->dirs; its index, or -1. */
static long push_dir(walk_state *w, char *rel) {
    if (!rel)
        return -1;
    dir_files *dirs = imgpack__grow_array(w->dirs, w->dir_count,
                                          &w->dir_capacity, sizeof *dirs, 16);
    if (!dirs) {
        free(rel);
        return -1;
    }
    w->dirs = dirs;
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
    imgpack__strings subdirs = {0};
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
            if (imgpack__strings_push(&subdirs, join(rel, e->d_name)) != 0)
                status = IMGPACK_ERR_NOMEM;
        } else if (!imgpack__is_image_name(e->d_name)) {
            w->src->skipped++;
        } else if (imgpack__strings_push(&w->dirs[k].files,
                                         strdup(e->d_name)) != 0) {
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
    imgpack__strings_free(&subdirs);
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
    imgpack_status status = walk_dir(w, w->src->class_names[class_id], 1);
    qsort(w->dirs, w->dir_count, sizeof *w->dirs, compare_dirs);
    for (size_t i = 0; i < w->dir_count && status == IMGPACK_OK; i++) {
        imgpack__strings *files = &w->dirs[i].files;
        imgpack__strings_sort(files);
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
    imgpack__strings classes = {0};
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
        if (imgpack__strings_push(&classes, strdup(e->d_name)) != 0) {
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
    imgpack__strings_sort(&classes);
    src->num_classes = (uint32_t)classes.count;
    src->class_names = classes.items;
    src->class_descriptions = calloc(classes.count, sizeof(char *));
    classes = (imgpack__strings){0};
    if (!src->class_descriptions) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t c = 0; c < src->num_classes && status == IMGPACK_OK; c++)
        status = list_class(&w, c, &capacity);
out:
    imgpack__strings_free(&classes);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
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
