/* SHA-256 digests as hex (digest.h); nettle does the hashing. */
#include "digest.h"

#include <stdint.h>
#include <stdlib.h>

#include <nettle/sha2.h>

struct imgpack__sha256 {
    struct sha256_ctx ctx;
};

static void to_hex(const uint8_t digest[SHA256_DIGEST_SIZE],
                   char hex[IMGPACK__SHA256_HEX]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void imgpack__sha256_hex(const void *data, size_t size,
                         char hex[IMGPACK__SHA256_HEX]) {
    imgpack__sha256 s;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&s.ctx);
    sha256_update(&s.ctx, size, data);
    sha256_digest(&s.ctx, sizeof digest, digest);
    to_hex(digest, hex);
}

imgpack__sha256 *imgpack__sha256_begin(void) {
    imgpack__sha256 *s = malloc(sizeof *s);
    if (s)
        sha256_init(&s->ctx);
    return s;
}

void imgpack__sha256_update(imgpack__sha256 *s, const void *data, size_t size) {
    sha256_update(&s->ctx, size, data);
}

void imgpack__sha256_end(imgpack__sha256 *s, char hex[IMGPACK__SHA256_HEX]) {
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&s->ctx, sizeof digest, digest);
    free(s);
    to_hex(digest, hex);
}
