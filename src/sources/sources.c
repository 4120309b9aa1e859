/*
 * What every kind of source shares: the open that picks a kind, start and
 * stop, items and their buffers, class tables, the listing's digest.
 */
#include "sources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "digest.h"
int imgpack__strings_push(imgpack__strings *l, char *s) {
    if (!s)
        return -1;
    char **items = imgpack__grow_array(l->items, l->count, &l->capacity,
                                       sizeof *items, 64);
    if (!items) {
        free(s);
        return -1;
    }
    l->items = items;
    l->items[l->count++] = s;
    return 0;
}

void imgpack__strings_free(imgpack__strings *l) {
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

int imgpack__compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void imgpack__strings_sort(imgpack__strings *l) {
    /* An empty list has no array yet, and qsort's may not be NULL. */
    if (l->count > 1)
        qsort(l->items, l->count, sizeof *l->items, imgpack__compare_strings);
}

int imgpack__ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

ssize_t imgpack__chomp(char *line, ssize_t n) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return n;
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

imgpack_status imgpack__source_add_item(imgpack__source *src, char *path,
                                        uint32_t class_id, size_t *capacity) {
    if (!path)
        return IMGPACK_ERR_NOMEM;
    imgpack__source_item *items = imgpack__grow_array(
        src->items, src->num_items, capacity, sizeof *items, 1024);
    if (!items) {
        free(path);
        return IMGPACK_ERR_NOMEM;
    }
    src->items = items;
    src->items[src->num_items] =
        (imgpack__source_item){.path = path, .class_id = class_id};
    src->num_items++;
    return IMGPACK_OK;
}

void *imgpack__grow_array(void *items, size_t count, size_t *capacity,
                          size_t size, size_t first) {
    void *bigger = items;
    size_t cap = *capacity ? *capacity * 2 : first;
    if (count < *capacity)
        goto done;
    if (!(bigger = realloc(items, cap * size)))
        goto done;
    *capacity = cap;
done:
    return bigger;
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

imgpack_status imgpack__source_open(imgpack__source_request *request,
                                    imgpack__source *src, imgpack__error *err) {
    /* In the order they are tried: --list makes a directory a list's root. */
    static const imgpack__source_ops *const kinds[] = {
        &imgpack__source_list,
        &imgpack__source_folder,
        &imgpack__source_tar,
        &imgpack__source_pixels,
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
    return src->ops->start ? src->ops->start(src, first, end, err) : IMGPACK_OK;
}

void imgpack__source_stop(imgpack__source *src, imgpack__error *err) {
    if (src->ops && src->ops->stop)
        src->ops->stop(src, err);
}

/* Frees the class table; a source still listing may have no descriptions. */
static void free_classes(imgpack__source *src) {
    for (uint32_t c = 0; c < src->num_classes; c++) {
        free(src->class_names[c]);
        if (src->class_descriptions)
            free(src->class_descriptions[c]);
    }
    free(src->class_names);
    free(src->class_descriptions);
}

void imgpack__source_take_classes(imgpack__source *src, char **names,
                                  char **descriptions, uint32_t count) {
    free_classes(src);
    src->class_names = names;
    src->class_descriptions = descriptions;
    src->num_classes = count;
}

static int find_class(const imgpack__source *src, const char *name) {
    char *const *found =
        bsearch(&name, src->class_names, src->num_classes,
                sizeof *src->class_names, imgpack__compare_strings);
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
        n = imgpack__chomp(line, n);
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
            status =
                imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (status == IMGPACK_OK && ferror(f))
        status =
            imgpack__error_set(err, IMGPACK_ERR_IO, "%s: read error", path);
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
    imgpack_status status =
        table && descriptions ? IMGPACK_OK : IMGPACK_ERR_NOMEM;
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
    imgpack__source_take_classes(src, table, descriptions, count);
    return IMGPACK_OK;
}

imgpack_status imgpack__source_read_class_names(imgpack__source *src,
                                                const char *path,
                                                imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    imgpack__strings names = {0};
    char *line = NULL;
    size_t capacity = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open the class names: %s", path,
                                  strerror(errno));
    for (ssize_t n; (n = getline(&line, &capacity, f)) > 0;) {
        n = imgpack__chomp(line, n);
        if (n > 0 && imgpack__strings_push(&names, strdup(line)) != 0) {
            status =
                imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
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
    imgpack__strings_free(&names);
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
    free_classes(src);
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
