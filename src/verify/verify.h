/*
 * The checks of imgpack_verify (imgpack/verify.h), shared by its files:
 * verify.c runs them in a child process and reports; verify_records.c
 * checks the metadata and the records, verify_catalog.c the catalog,
 * verify_sources.c the source files. Every check reports through
 * imgpack__verify_problem and goes on: a finding is not a failure.
 */
#ifndef IMGPACK_SRC_VERIFY_H
#define IMGPACK_SRC_VERIFY_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#include "imgpack/reader.h"
#include "imgpack/verify.h"

/* A record label that could not be read: never a valid class id, since
   labels are below num_classes, itself a uint32_t. */
#define IMGPACK__VERIFY_NO_LABEL UINT32_MAX

/* What the checking child is doing, for the parent to say if it dies. */
enum imgpack__verify_phase {
    IMGPACK__VERIFY_OPEN,    /* opening the store, loading its metadata */
    IMGPACK__VERIFY_META,    /* walking the metadata */
    IMGPACK__VERIFY_RECORDS, /* reading record `record` */
    IMGPACK__VERIFY_LABELS,  /* reading the labels */
    IMGPACK__VERIFY_CATALOG, /* comparing the catalog with the store */
    IMGPACK__VERIFY_SOURCES, /* hashing source files */
};

/* Shared with the parent (verify.c): written by the child, read once it
   ended. */
typedef struct imgpack__verify_progress {
    _Atomic int phase;
    _Atomic uint64_t record;
    _Atomic uint64_t count;
    _Atomic uint32_t classes;
    _Atomic int32_t complete;
    _Atomic int32_t opened;
    _Atomic int status;                    /* the child's imgpack_status */
    char error[IMGPACK_VERIFY_ERROR_SIZE]; /* with a failed status */
} imgpack__verify_progress;

typedef struct imgpack__verify {
    const char *dir;
    const char *sources; /* NULL: not checked */
    imgpack_reader *reader;
    sqlite3 *db; /* the catalog, once open */
    uint64_t count;
    int complete;
    /* An append stopped before its last commit (append_state): its catalog
       rows and classes past the store's are ignored, as an unfinished
       pack's rows are. */
    int stopped_append;
    uint32_t *labels; /* per record, IMGPACK__VERIFY_NO_LABEL where bad */
    uint64_t *sizes;  /* per record: LMDB value size, 0 where bad */
    uint8_t *pixels;  /* decode buffer for jpeg and webp records */
    uint64_t pixels_capacity;
    int fd; /* where problems go: the pipe to the parent */
    imgpack__verify_progress *progress;
} imgpack__verify;

/* Reports one problem of `kind` about `record` (or
   IMGPACK_PROBLEM_NO_RECORD), the printf-formatted line. */
void imgpack__verify_problem(imgpack__verify *v, int kind, uint64_t record,
                             const char *format, ...)
    __attribute__((format(printf, 4, 5)));

void imgpack__verify_set_phase(imgpack__verify *v,
                               enum imgpack__verify_phase phase);

/* Meta `key` as a NUL-terminated string in `out`; 0 if the store has no
   such key (or it does not fit). */
int imgpack__verify_store_meta(imgpack__verify *v, const char *key, char *out,
                               size_t capacity);

/* verify_records.c: every metadata checksum; every record (filling
   labels and sizes); a complete store's labels metadata. */
void imgpack__verify_meta(imgpack__verify *v);
void imgpack__verify_records(imgpack__verify *v);
void imgpack__verify_label_metadata(imgpack__verify *v);

/* verify_catalog.c: the catalog against the store (after the records). */
void imgpack__verify_catalog(imgpack__verify *v);

/* Prepares `sql` on the catalog, or reports why not and returns NULL. */
sqlite3_stmt *imgpack__verify_prepare(imgpack__verify *v, const char *sql);

/* Ends a statement's walk (`rc`: its last step); an error part way is a
   problem too. Finalizes the statement. */
void imgpack__verify_finish(imgpack__verify *v, sqlite3_stmt *stmt, int rc);

/* verify_sources.c: each source file against the catalog's sha256. */
void imgpack__verify_sources(imgpack__verify *v);

#endif
