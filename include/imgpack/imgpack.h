/*
 * imgpack: pack image datasets into LMDB stores built for training.
 *
 * This header holds what every part of the API shares: the version, the
 * export macro and the status codes. Include <imgpack/pack.h> to build a
 * store and <imgpack/reader.h> to read one; both include this file.
 *
 * Conventions used throughout the API:
 *  - Functions that can fail return an imgpack_status; IMGPACK_OK is 0.
 *  - Constructors fill an out-parameter; destructors accept NULL and return
 *    nothing.
 *  - imgpack_strerror() gives the static text of a code; each handle has an
 *    errmsg function naming the file and the reason of its last failure.
 *  - Integers that cross the API have fixed widths; buffers are pointer +
 *    length; no varargs and no structs by value, so ctypes can bind it 1:1.
 */
#ifndef IMGPACK_IMGPACK_H
#define IMGPACK_IMGPACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IMGPACK_BUILDING) && defined(__GNUC__)
#define IMGPACK_API __attribute__((visibility("default")))
#else
#define IMGPACK_API
#endif

/* IMGPACK_VERSION_MAJOR, _MINOR, _PATCH and IMGPACK_VERSION_STRING, made by
   the build from the project's one version (cmake/version.h.in). */
#include "imgpack/version.h"

/*
 * The status codes, as one list: X(NAME, value, message). Values are
 * explicit and never reused; a code that is retired keeps its number.
 */
#define IMGPACK_STATUS_MAP(X)                                            \
    X(OK, 0, "success")                                                  \
    X(ERR_INVALID_ARG, 1, "invalid argument")                            \
    X(ERR_NOMEM, 2, "out of memory")                                     \
    X(ERR_IO, 3, "input/output error")                                   \
    X(ERR_NOT_FOUND, 4, "no such file or directory")                     \
    X(ERR_DECODE, 5, "image data is corrupt or truncated")               \
    X(ERR_UNSUPPORTED, 6, "unsupported image type")                      \
    X(ERR_TOO_LARGE, 7, "image exceeds the pixel limit")                 \
    X(ERR_STORE, 8, "LMDB error")                                        \
    X(ERR_CATALOG, 9, "SQLite catalog error")                            \
    X(ERR_VERSION_MISMATCH, 10, "store format version is not supported") \
    X(ERR_CORRUPT, 11, "record is corrupt")                              \
    X(ERR_EXISTS, 12, "output directory already holds a store")          \
    X(ERR_REJECTED, 13, "a file was rejected and strict mode is on")     \
    X(ERR_INCOMPLETE, 14, "store was not completely packed")             \
    X(ERR_RANGE, 15, "index out of range")                               \
    X(ERR_THREAD, 16, "could not start or synchronise a thread")         \
    X(ERR_NOT_A_STORE, 17, "not an imgpack store")                       \
    X(ERR_NO_SPACE, 18, "no space left on device")

typedef enum imgpack_status {
#define IMGPACK_STATUS_ENUM(name, value, message) IMGPACK_##name = value,
    IMGPACK_STATUS_MAP(IMGPACK_STATUS_ENUM)
#undef IMGPACK_STATUS_ENUM
} imgpack_status;

/* Static English text for a status code; never NULL, never to be freed. */
IMGPACK_API const char *imgpack_strerror(int status);

/* The code's identifier without its prefix, e.g. "ERR_DECODE"; never NULL. */
IMGPACK_API const char *imgpack_status_name(int status);

/* The library's version as "MAJOR.MINOR.PATCH"; static text, any thread.
   A program (or a binding) checks with it that the library it loaded at
   run time is the one it was built for: IMGPACK_VERSION_STRING. */
IMGPACK_API const char *imgpack_version(void);

/*
 * Output formats of the records in a store. Values are written into every
 * record header and the store metadata: never renumber them.
 */
typedef enum imgpack_format {
    IMGPACK_FORMAT_RAW = 0, /* uint8 pixels, HWC, row-major */
    IMGPACK_FORMAT_JPEG =
        1, /* JPEG (libjpeg-turbo), quality set at pack time */
    IMGPACK_FORMAT_WEBP = 2, /* lossy WebP */
    IMGPACK_FORMAT_WEBP_LOSSLESS =
        3, /* lossless WebP: decodes to raw's bytes */
} imgpack_format;

/*
 * Limits on sides, shared by the packer and the reader. IMGPACK_MAX_SIDE
 * caps the resize and crop options: no training pipeline resizes to more,
 * and it keeps a record's size within the header's 32 bits.
 * IMGPACK_MAX_RECORD_SIDE caps what a reader accepts as a record's side or
 * as a store's width, height, resize and crop: a pack with resize 0 keeps
 * each source's own size, and JPEG's sides stop at 65535; a larger claim is
 * damage (IMGPACK_ERR_CORRUPT).
 */
#define IMGPACK_MAX_SIDE 16384u
#define IMGPACK_MAX_RECORD_SIDE 65536u

/* "raw", "jpeg", "webp" or "webp-lossless"; NULL for an unknown value. */
IMGPACK_API const char *imgpack_format_name(int format);

/* The format named by `name` into *format; IMGPACK_ERR_INVALID_ARG if none. */
IMGPACK_API imgpack_status imgpack_format_parse(const char *name,
                                                int32_t *format);

#ifdef __cplusplus
}
#endif

#endif /* IMGPACK_IMGPACK_H */
