/*
 * What reader.c shares with batch.c: a thread's read session on a reader
 * and the record access beneath the public get/decode calls. A batch worker
 * begins one session per batch, so its read transaction is renewed once per
 * batch, not once per record.
 */
#ifndef IMGPACK_SRC_READER_INTERNAL_H
#define IMGPACK_SRC_READER_INTERNAL_H

#include <stdint.h>

#include "decode.h"
#include "error.h"
#include "image.h"
#include "imgpack/reader.h"
#include "record.h"

/* One thread's state on one reader: read transaction, decoder, error. */
typedef struct imgpack__read_slot imgpack__read_slot;

/*
 * Starts a read on the calling thread: reopens the store after a fork,
 * finds (or makes) the thread's slot, takes the map lock shared and makes
 * the read transaction current. On success the caller must call
 * imgpack__reader_end. On failure the reason is what
 * imgpack_reader_errmsg shows to this thread, and imgpack__reader_message
 * gives it too.
 */
imgpack_status imgpack__reader_begin(imgpack_reader *r,
                                     imgpack__read_slot **slot);

/* Ends a read: releases the map lock. Views stay valid as documented for
   imgpack_reader_get. */
void imgpack__reader_end(imgpack_reader *r, imgpack__read_slot *slot);

/*
 * Record `index` as pixels: a view into the map for raw records, or the
 * slot's decoder output for jpeg/webp (valid until the thread's next
 * decode). `window` (may be NULL) is passed to the decoder: encoded
 * records then only guarantee the pixels it asks for; raw records never
 * call it. The header is checked; its fields go to *h. Errors are set in
 * the slot.
 */
imgpack_status imgpack__reader_pixels(imgpack_reader *r,
                                      imgpack__read_slot *slot, uint64_t index,
                                      const imgpack__window *window,
                                      imgpack__record_header *h,
                                      imgpack__pixels *px);

/* The message of the calling thread's last failure on `r` ("" if none). */
const char *imgpack__reader_message(const imgpack_reader *r);

/* Makes `message` the calling thread's last failure on `r`, for work that
   other threads did on its behalf and failed; returns `code`. */
imgpack_status imgpack__reader_fail(imgpack_reader *r, imgpack_status code,
                                   const char *message);

/* How many times this process has forked (counted in the child), so that
   objects holding threads or LMDB handles notice they are in a new
   process. Registers the fork handler on first use. */
unsigned imgpack__fork_generation(void);

#endif
