/*
 * The work a pool thread does for one source item: read it (the source's
 * read operation), hash it, decode, resize and crop, expand gray to RGB,
 * encode, and lay out the LMDB value. A transformer holds one thread's
 * reusable state (decoder, resizer, file and pixel buffers); it is made by
 * the thread that uses it.
 */
#ifndef IMGPACK_SRC_TRANSFORM_H
#define IMGPACK_SRC_TRANSFORM_H

#include <stdint.h>

#include "decode.h"
#include "imgpack/imgpack.h"
#include "sources.h"

typedef struct imgpack__transform_settings {
    uint32_t resize;     /* short side, 0 = keep */
    uint32_t crop;       /* center-crop side, 0 = none */
    int32_t format;      /* imgpack_format */
    int32_t quality;     /* for jpeg and webp */
    uint32_t channels;   /* of the records: 3 (RGB), or 1 for gray sources */
    uint64_t max_pixels; /* 0 = no limit */
} imgpack__transform_settings;

/* What became of one source file; the writer takes ownership. */
typedef struct imgpack__result {
    uint8_t *value; /* LMDB value (header + payload); NULL when rejected */
    size_t value_size;
    uint32_t src_width, src_height;
    uint64_t src_bytes;
    char sha256[65];       /* lowercase hex of the source file */
    imgpack_status status; /* IMGPACK_OK or why it was rejected */
    char reason[IMGPACK__REASON_SIZE];
} imgpack__result;

typedef struct imgpack__transformer imgpack__transformer;

imgpack_status
imgpack__transformer_create(imgpack__transformer **out,
                            const imgpack__transform_settings *settings);
void imgpack__transformer_destroy(imgpack__transformer *t);

/* Turns item `index` of `src` into *r. Never fails as a whole: an item
   that cannot be packed is a result with a reason. */
void imgpack__transform_item(imgpack__transformer *t,
                             const imgpack__source *src, size_t index,
                             imgpack__result *r);

/* Frees what a result owns. */
void imgpack__result_clear(imgpack__result *r);

#endif
