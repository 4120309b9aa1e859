/*
 * Per-handle error state: a status code and a message that names the file
 * and the reason. Every handle embeds one; imgpack_*_errmsg() returns its
 * text. There is no process-wide error buffer.
 */
#ifndef IMGPACK_SRC_ERROR_H
#define IMGPACK_SRC_ERROR_H

#include "imgpack/imgpack.h"

/* Long enough for a path and a library's own message after it. */
#define IMGPACK__ERRMSG_SIZE 1024

typedef struct imgpack__error {
    imgpack_status code;
    char message[IMGPACK__ERRMSG_SIZE];
} imgpack__error;

/* Records `code` and the printf-formatted message; returns `code`. */
imgpack_status imgpack__error_set(imgpack__error *err, imgpack_status code,
                                  const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Forgets the last failure. */
void imgpack__error_clear(imgpack__error *err);

/* The message of the last failure, or "" when there was none. */
const char *imgpack__error_text(const imgpack__error *err);

/* Maps an errno value to a status code (ENOENT -> ERR_NOT_FOUND, ...). */
imgpack_status imgpack__status_from_errno(int errnum);

#endif
