/*
 * Status texts, built from the one X-macro list in the public header, and
 * the per-handle error state that carries a file name and reason with them.
 */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *imgpack_strerror(int status) {
    switch (status) {
#define IMGPACK_STATUS_TEXT(name, value, message) \
    case value:                                   \
        return message;
        IMGPACK_STATUS_MAP(IMGPACK_STATUS_TEXT)
#undef IMGPACK_STATUS_TEXT
    }
    return "unknown status code";
}

const char *imgpack_status_name(int status) {
    switch (status) {
#define IMGPACK_STATUS_NAME(name, value, message) \
    case value:                                   \
        return #name;
        IMGPACK_STATUS_MAP(IMGPACK_STATUS_NAME)
#undef IMGPACK_STATUS_NAME
    }
    return "UNKNOWN";
}

const char *imgpack_version(void) {
    return IMGPACK_VERSION_STRING;
}

imgpack_status imgpack__error_set(imgpack__error *err, imgpack_status code,
                                  const char *format, ...) {
    va_list args;
    err->code = code;
    va_start(args, format);
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return code;
}

void imgpack__error_clear(imgpack__error *err) {
    err->code = IMGPACK_OK;
    err->message[0] = '\0';
}

const char *imgpack__error_text(const imgpack__error *err) {
    return err->code == IMGPACK_OK ? "" : err->message;
}

imgpack_status imgpack__status_from_errno(int errnum) {
    switch (errnum) {
    case ENOENT:
    case ENOTDIR:
        return IMGPACK_ERR_NOT_FOUND;
    case ENOMEM:
        return IMGPACK_ERR_NOMEM;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return IMGPACK_ERR_NO_SPACE;
    case EINVAL:
        return IMGPACK_ERR_INVALID_ARG;
    default:
        return IMGPACK_ERR_IO;
    }
}
