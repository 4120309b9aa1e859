/* SHA-256 digests as hex (digest.h); libcrypto does the hashing. */
#include "digest.h"

#include <openssl/evp.h>

static void to_hex(const unsigned char digest[32],
                   char hex[IMGPACK__SHA256_HEX]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void imgpack__sha256_hex(const void *data, size_t size,
                         char hex[IMGPACK__SHA256_HEX]) {
    unsigned char digest[32];
    EVP_Digest(data, size, digest, NULL, EVP_sha256(), NULL);
    to_hex(digest, hex);
}

imgpack__sha256 *imgpack__sha256_begin(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return (imgpack__sha256 *)ctx;
}

void imgpack__sha256_update(imgpack__sha256 *ctx, const void *data,
                            size_t size) {
    EVP_DigestUpdate((EVP_MD_CTX *)ctx, data, size);
}

void imgpack__sha256_end(imgpack__sha256 *ctx,
                         char hex[IMGPACK__SHA256_HEX]) {
    unsigned char digest[32];
    EVP_DigestFinal_ex((EVP_MD_CTX *)ctx, digest, NULL);
    EVP_MD_CTX_free((EVP_MD_CTX *)ctx);
    to_hex(digest, hex);
}
