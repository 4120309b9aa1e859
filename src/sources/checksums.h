/* Verifying source files against a sha256sum list (checksums.c). */
#ifndef IMGPACK_SRC_CHECKSUMS_H
#define IMGPACK_SRC_CHECKSUMS_H

#include "error.h"

/* Hashes every file `sums_path` names and compares. The first missing file
   or mismatch is the error, named: IMGPACK_ERR_NOT_FOUND, IMGPACK_ERR_IO,
   IMGPACK_ERR_CORRUPT; IMGPACK_ERR_INVALID_ARG for a malformed line. */
imgpack_status imgpack__verify_checksums(const char *sums_path,
                                         imgpack__error *err);

#endif
