/*
 * SHA-256 through nettle, in the lowercase hex the catalog stores: one call
 * for a buffer, or a context fed piece by piece. nettle rather than
 * OpenSSL's libcrypto: as fast (both use the CPU's SHA instructions), and
 * loading libcrypto and initialising its providers cost every imgpack
 * command about 5 ms.
 */
#ifndef IMGPACK_SRC_DIGEST_H
#define IMGPACK_SRC_DIGEST_H

#include <stddef.h>

#define IMGPACK__SHA256_HEX 65 /* 64 digits and a NUL */

typedef struct imgpack__sha256 imgpack__sha256;

/* SHA-256 of `size` bytes, as hex. */
void imgpack__sha256_hex(const void *data, size_t size,
                         char hex[IMGPACK__SHA256_HEX]);

/* A context for data that comes in pieces; NULL if memory ran out. */
imgpack__sha256 *imgpack__sha256_begin(void);
void imgpack__sha256_update(imgpack__sha256 *ctx, const void *data,
                            size_t size);
/* Writes the digest as hex and frees the context. */
void imgpack__sha256_end(imgpack__sha256 *ctx, char hex[IMGPACK__SHA256_HEX]);

#endif
