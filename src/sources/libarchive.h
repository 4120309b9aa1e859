/*
 * libarchive, loaded the first time an archive is walked instead of when
 * imgpack is. Only tar sources need it, and it brings eleven more shared
 * libraries (libxml2, ICU, libstdc++, four compressors): linking it cost
 * every imgpack process about 5 ms at start, the fifth of a small pack's
 * fixed cost, whatever it packed.
 */
#ifndef IMGPACK_SRC_LIBARCHIVE_H
#define IMGPACK_SRC_LIBARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "error.h"

/* The libarchive functions imgpack calls. */
#define IMGPACK__LIBARCHIVE_FUNCTIONS(X) \
    X(archive_read_new)                  \
    X(archive_read_support_format_tar)   \
    X(archive_read_support_filter_all)   \
    X(archive_read_set_read_callback)    \
    X(archive_read_set_seek_callback)    \
    X(archive_read_set_skip_callback)    \
    X(archive_read_set_callback_data)    \
    X(archive_read_open1)                \
    X(archive_read_next_header)          \
    X(archive_read_data)                 \
    X(archive_read_free)                 \
    X(archive_filter_bytes)              \
    X(archive_errno)                     \
    X(archive_error_string)              \
    X(archive_set_error)                 \
    X(archive_entry_pathname)            \
    X(archive_entry_size)                \
    X(archive_entry_filetype)

/* Pointers to them, named and typed as libarchive declares them. */
typedef struct imgpack__libarchive {
#define IMGPACK__LIBARCHIVE_FIELD(name) __typeof__(name) *name;
    IMGPACK__LIBARCHIVE_FUNCTIONS(IMGPACK__LIBARCHIVE_FIELD)
#undef IMGPACK__LIBARCHIVE_FIELD
} imgpack__libarchive;

/*
 * Loads libarchive once per process (any thread; later calls return the
 * first outcome) and sets *out to its functions, valid for the rest of the
 * process. IMGPACK_ERR_UNSUPPORTED, with the loader's reason in `err`,
 * when it cannot be loaded.
 */
imgpack_status imgpack__libarchive_load(const imgpack__libarchive **out,
                                        imgpack__error *err);

#endif
