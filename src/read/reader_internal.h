/*
 * What reader.c shares with batch.c: a thread's read session on a reader
 * and the record access beneath the public get/decode calls. A batch worker
 * begins one session per batch, so its read transaction is renewed once per
 * batch, not once per record.
 */
#ifndef IMGPACK_SRC_READER_INTERNAL_H
#define IMGPACK_SRC_READER_INTERNAL_H

#include <stddef.h>
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

/*
 * Where record `index` lies, unchecked: its shard and its value in that
 * shard's map. A bare mdb_get: for a value on overflow pages (every record
 * over 2 KiB) LMDB computes the address from the page number without
 * touching those pages (mdb.c: mdb_node_read, mdb_page_get in a read-only
 * transaction), so this costs no I/O beyond the B-tree's own pages.
 * Errors are set in the slot.
 */
imgpack_status imgpack__reader_locate(imgpack_reader *r, imgpack__read_slot *s,
                                      uint64_t index, uint32_t *shard,
                                      const uint8_t **data, size_t *size);

/*
 * Starts reading records indices[0..n-1] into the page cache ahead of use
 * (readahead.c; imgpack_reader_prefetch without its argument checks). A
 * hint: failures are ignored, since the reads that follow report them.
 */
void imgpack__reader_readahead(imgpack_reader *r, const uint64_t *indices,
                               uint64_t n);

/*
 * Just before a record's pixels are read: when the last read-ahead found
 * the store not in the page cache, asks again for the pages of `data`
 * that are missing (read ahead earlier but dropped under memory
 * pressure), as one request instead of a fault per page. Otherwise
 * nothing.
 */
void imgpack__reader_rearm(imgpack_reader *r, const uint8_t *data, size_t size);

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
