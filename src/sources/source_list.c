/*
 * The list kind of source: list files (Caffe's format and
 * ImageNet's Kaggle validation CSV), and class tables taken from another
 * store so that a validation pack's labels mean what the training pack's
 * mean.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources.h"
#include "store_peek.h"

#define KAGGLE_HEADER "ImageId,PredictionString"
#define KAGGLE_EXTENSION ".JPEG"

typedef struct entry {
    char *path;
    char *label;
    size_t line; /* 1-based, to keep --sort stable and to name lines */
} entry;

typedef struct entries {
    entry *items;
    size_t count, capacity;
} entries;

static void entries_free(entries *e) {
    for (size_t i = 0; i < e->count; i++) {
        free(e->items[i].path);
        free(e->items[i].label);
    }
    free(e->items);
}

static int entries_push(entries *e, char *path, char *label, size_t line) {
    entry *items = imgpack__grow_array(e->items, e->count, &e->capacity,
                                       sizeof *items, 1024);
    if (!items)
        return -1;
    e->items = items;
    e->items[e->count++] = (entry){path, label, line};
    return path && label ? 0 : -1;
}

static int by_path(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int is_number(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Splits one line into a path and a label; returns 0 or -1 if malformed. */
static int parse_line(char *line, int kaggle, char **path, char **label) {
    if (kaggle) {
        char *comma = strchr(line, ',');
        if (!comma)
            return -1;
        *comma = '\0';
        char *end = strchr(comma + 1, ' ');
        if (end)
            *end = '\0';
        if (asprintf(path, "%s" KAGGLE_EXTENSION, line) < 0)
            *path = NULL;
        *label = strdup(comma + 1);
        return *label && **label ? 0 : -1;
    }
    char *blank = strrchr(line, ' '), *tab = strrchr(line, '\t');
    if (tab > blank)
        blank = tab;
    if (!blank || blank == line || !blank[1])
        return -1;
    *label = strdup(blank + 1);
    while (blank > line && (blank[-1] == ' ' || blank[-1] == '\t'))
        blank--;
    *blank = '\0';
    *path = strdup(line);
    return 0;
}

static imgpack_status read_list(const char *list_path, entries *out,
                                imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    char *line = NULL;
    size_t capacity = 0, number = 0;
    int kaggle = 0;
    FILE *f = fopen(list_path, "r");
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open the list: %s", list_path,
                                  strerror(errno));
    for (ssize_t n; (n = getline(&line, &capacity, f)) > 0;) {
        char *path = NULL, *label = NULL;
        number++;
        n = imgpack__chomp(line, n);
        if (number == 1 && strcmp(line, KAGGLE_HEADER) == 0) {
            kaggle = 1;
            continue;
        }
        if (n == 0 || line[0] == '#')
            continue;
        if (parse_line(line, kaggle, &path, &label) != 0) {
            free(path);
            free(label);
            status = imgpack__error_set(
                err, IMGPACK_ERR_INVALID_ARG, "%s: line %zu: expected %s",
                list_path, number,
                kaggle ? "ImageId,PredictionString" : "'relative/path label'");
            break;
        }
        if (entries_push(out, path, label, number) != 0) {
            status =
                imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    return status;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Class names from the labels: ids name "0".."max", names sort by bytes. */
static imgpack_status make_classes(imgpack__source *src, const entries *e,
                                   imgpack__error *err) {
    size_t numbers = 0;
    uint64_t max = 0;
    for (size_t i = 0; i < e->count; i++) {
        if (is_number(e->items[i].label)) {
            numbers++;
            uint64_t id = strtoull(e->items[i].label, NULL, 10);
            max = id > max ? id : max;
        }
    }
    if (numbers != 0 && numbers != e->count)
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "the list mixes class ids and class names");
    src->labels_are_ids = numbers != 0;
    size_t count = 0;
    if (e->count == 0) {
        count = 0;
    } else if (src->labels_are_ids) {
        if (max >= IMGPACK__NO_CLASS)
            return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                      "class id %" PRIu64 " is too large", max);
        count = (size_t)max + 1;
    } else {
        count = e->count;
    }
    src->class_names = calloc(count ? count : 1, sizeof(char *));
    src->class_descriptions = calloc(count ? count : 1, sizeof(char *));
    if (!src->class_names || !src->class_descriptions)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (src->labels_are_ids) {
        for (size_t c = 0; c < count; c++) {
            char name[24];
            snprintf(name, sizeof name, "%zu", c);
            if (!(src->class_names[c] = strdup(name)))
                return imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                          "out of memory");
        }
        src->num_classes = (uint32_t)count;
        return IMGPACK_OK;
    }
    /* Unique names in byte order, as ImageFolder numbers its classes. */
    for (size_t i = 0; i < e->count; i++)
        src->class_names[i] = e->items[i].label;
    qsort(src->class_names, e->count, sizeof(char *), compare_names);
    size_t unique = 0;
    for (size_t i = 0; i < e->count; i++)
        if (unique == 0 ||
            strcmp(src->class_names[unique - 1], src->class_names[i]) != 0)
            src->class_names[unique++] = src->class_names[i];
    for (size_t i = 0; i < unique; i++)
        if (!(src->class_names[i] = strdup(src->class_names[i])))
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    for (size_t i = unique; i < e->count; i++)
        src->class_names[i] = NULL;
    src->num_classes = (uint32_t)unique;
    return IMGPACK_OK;
}

static uint32_t class_of(const imgpack__source *src, const char *label) {
    if (src->labels_are_ids)
        return (uint32_t)strtoull(label, NULL, 10);
    char *const *found = bsearch(&label, src->class_names, src->num_classes,
                                 sizeof(char *), compare_names);
    return (uint32_t)(found - src->class_names);
}

static int claims_list(const imgpack__source_request *request) {
    return request->is_dir && request->list;
}

static imgpack_status open_list(const imgpack__source_request *request,
                                imgpack__source *src, imgpack__error *err);

/* Its files are read as a folder's are. */
const imgpack__source_ops imgpack__source_list = {
    .claims = claims_list,
    .open = open_list,
    .read = imgpack__source_read_file,
};

static imgpack_status open_list(const imgpack__source_request *request,
                                imgpack__source *src, imgpack__error *err) {
    entries e = {0};
    size_t capacity = 0;
    imgpack_status status;
    memset(src, 0, sizeof *src);
    src->ops = &imgpack__source_list;
    if (!(src->root = strdup(request->path))) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((status = read_list(request->list, &e, err)) ||
        (status = make_classes(src, &e, err)))
        goto out;
    if (request->sort_list)
        qsort(e.items, e.count, sizeof *e.items, by_path);
    for (size_t i = 0; i < e.count && status == IMGPACK_OK; i++) {
        status = imgpack__source_add_item(
            src, e.items[i].path, class_of(src, e.items[i].label), &capacity);
        e.items[i].path = NULL; /* the source owns it now */
    }
    if (status != IMGPACK_OK)
        imgpack__error_set(err, status, "out of memory");
out:
    entries_free(&e);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
}

/* The class table of another store: names and descriptions by id, the
   caller's to free. */
static imgpack_status load_table(const char *store_dir, char ***names,
                                 char ***descriptions, uint32_t *count,
                                 imgpack__error *err) {
    imgpack__store_summary store;
    imgpack__error why;
    imgpack__error_clear(&why);
    imgpack_status status = imgpack__store_peek(store_dir, &store, &why);
    if (status != IMGPACK_OK)
        return imgpack__error_set(err, status, "--classes-from: %s",
                                  imgpack__error_text(&why));
    *count = store.header.num_classes;
    *names = store.header.class_names;
    *descriptions = store.header.class_descriptions;
    return IMGPACK_OK;
}

/* qsort_r order of class ids by their names. */
static int by_name(const void *a, const void *b, void *names) {
    char **n = names;
    return strcmp(n[*(const uint32_t *)a], n[*(const uint32_t *)b]);
}

/* The id named `name`, by binary search of `ids` (sorted by name). */
static uint32_t find_id(char **names, const uint32_t *ids, uint32_t count,
                        const char *name) {
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(names[ids[mid]], name);
        if (c == 0)
            return ids[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return IMGPACK__NO_CLASS;
}

imgpack_status imgpack__source_use_classes(imgpack__source *src,
                                           const char *store_dir,
                                           imgpack__error *err) {
    char **names = NULL, **descriptions = NULL;
    uint32_t *sorted = NULL;
    uint32_t count = 0;
    imgpack_status status =
        load_table(store_dir, &names, &descriptions, &count, err);
    if (status == IMGPACK_OK &&
        !(sorted = malloc((count ? count : 1) * sizeof *sorted)))
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (status != IMGPACK_OK)
        goto out;
    for (uint32_t c = 0; c < count; c++)
        sorted[c] = c;
    qsort_r(sorted, count, sizeof *sorted, by_name, names);
    for (size_t i = 0; i < src->num_items && status == IMGPACK_OK; i++) {
        imgpack__source_item *item = &src->items[i];
        const char *name = src->class_names[item->class_id];
        uint32_t id = IMGPACK__NO_CLASS;
        if (src->labels_are_ids) {
            if (item->class_id < count)
                id = item->class_id;
        } else {
            id = find_id(names, sorted, count, name);
        }
        if (id == IMGPACK__NO_CLASS &&
            asprintf(&item->reject,
                     "class '%s' is not in the class table of %s", name,
                     store_dir) < 0) {
            item->reject = NULL;
            status =
                imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        }
        item->class_id = id;
    }
    if (status != IMGPACK_OK)
        goto out;
    imgpack__source_take_classes(src, names, descriptions, count);
    names = descriptions = NULL;
out:
    for (uint32_t c = 0; names && c < count; c++) {
        free(names[c]);
        free(descriptions[c]);
    }
    free(names);
    free(descriptions);
    free(sorted);
    return status;
}
