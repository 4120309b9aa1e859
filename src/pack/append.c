/*
 * The listing of an append (imgpack_pack_options_set_append): the
 * source's items that the store does not hold yet, by path, under the
 * store's class table with the source's other classes added after it.
 * The store's class ids and record indices never change: a new class
 * gets the next free id, in the source's class order, so class ids are
 * no longer in name order as a fresh pack's ImageFolder ids are.
 *
 * "Held" means an images row below the store's count: rows past it are
 * an interrupted append's, which the append packs again.
 */
#include "append.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "store_peek.h"

/* The paths of the store's `count` records, sorted. */
static imgpack_status held_paths(const char *store_dir, uint64_t count,
                                 imgpack__strings *paths, imgpack__error *err) {
    char path[4096];
    sqlite3 *db;
    sqlite3_stmt *stmt = NULL;
    snprintf(path, sizeof path, "%s/catalog.db", store_dir);
    imgpack_status status = imgpack__catalog_open_read(&db, path, 1, err);
    if (status == IMGPACK_OK &&
        sqlite3_prepare_v2(db, "SELECT path FROM images WHERE idx < ?", -1,
                           &stmt, NULL) != SQLITE_OK)
        status = imgpack__error_set(err, IMGPACK_ERR_CATALOG, "%s: %s", path,
                                    sqlite3_errmsg(db));
    if (stmt)
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)count);
    int rc = SQLITE_DONE;
    while (status == IMGPACK_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        if (imgpack__strings_push(
                paths, strdup((const char *)sqlite3_column_text(stmt, 0))))
            status =
                imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (status == IMGPACK_OK && rc != SQLITE_DONE)
        status = imgpack__error_set(err, IMGPACK_ERR_CATALOG, "%s: %s", path,
                                    sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    imgpack__strings_sort(paths);
    return status;
}

/* Drops the items the store holds, keeping the others in order. */
static void drop_held(imgpack__source *src, const imgpack__strings *held) {
    size_t kept = 0;
    for (size_t i = 0; i < src->num_items; i++) {
        imgpack__source_item *item = &src->items[i];
        if (bsearch(&item->path, held->items, held->count, sizeof(char *),
                    imgpack__compare_strings)) {
            free(item->path);
            free(item->reject);
            continue;
        }
        src->items[kept++] = *item;
    }
    src->num_items = kept;
}

/* The store's class `name`, or IMGPACK__NO_CLASS (a linear search: class
   tables are thousands of names at most, and this runs once per class). */
static uint32_t find_class(char **names, uint32_t count, const char *name) {
    for (uint32_t c = 0; c < count; c++)
        if (strcmp(names[c], name) == 0)
            return c;
    return IMGPACK__NO_CLASS;
}

/* Installs the store's class table, the source's other classes appended,
   and maps the items to it by name. Takes `h`'s class table. */
static imgpack_status extend_classes(imgpack__source *src,
                                     imgpack__store_header *h,
                                     imgpack__error *err) {
    uint32_t total = h->num_classes + src->num_classes;
    uint32_t *id = malloc((src->num_classes + 1) * sizeof *id);
    char **names = realloc(h->class_names, (total + 1) * sizeof *names);
    if (names)
        h->class_names = names;
    char **descriptions =
        names ? realloc(h->class_descriptions, (total + 1) * sizeof *names)
              : NULL;
    if (descriptions)
        h->class_descriptions = descriptions;
    if (!id || !descriptions) {
        free(id);
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    }
    uint32_t n = h->num_classes;
    for (uint32_t c = 0; c < src->num_classes; c++) {
        id[c] = find_class(names, h->num_classes, src->class_names[c]);
        if (id[c] != IMGPACK__NO_CLASS)
            continue;
        /* Taken: the source's table is freed below without them. */
        names[n] = src->class_names[c];
        src->class_names[c] = NULL;
        descriptions[n] = NULL;
        if (src->class_descriptions) {
            descriptions[n] = src->class_descriptions[c];
            src->class_descriptions[c] = NULL;
        }
        id[c] = n++;
    }
    for (size_t i = 0; i < src->num_items; i++)
        if (src->items[i].class_id != IMGPACK__NO_CLASS)
            src->items[i].class_id = id[src->items[i].class_id];
    free(id);
    imgpack__source_take_classes(src, names, descriptions, n);
    h->class_names = h->class_descriptions = NULL;
    h->num_classes = 0;
    return IMGPACK_OK;
}

imgpack_status imgpack__append_listing(imgpack__source *src,
                                       const char *store_dir,
                                       imgpack__error *err) {
    imgpack__store_summary store;
    imgpack__strings held = {0};
    imgpack__error why;
    imgpack__error_clear(&why);
    imgpack_status status = imgpack__store_peek(store_dir, &store, &why);
    if (status != IMGPACK_OK)
        return imgpack__error_set(err, status, "--append: %s",
                                  imgpack__error_text(&why));
    if (src->labels_are_ids)
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "--append: a list with numeric labels "
                                    "names no classes to match the store's");
    if (status == IMGPACK_OK)
        status = held_paths(store_dir, store.count, &held, err);
    if (status == IMGPACK_OK) {
        drop_held(src, &held);
        status = extend_classes(src, &store.header, err);
    }
    imgpack__strings_free(&held);
    imgpack__store_header_free(&store.header);
    return status;
}
