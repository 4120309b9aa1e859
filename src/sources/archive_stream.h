/*
 * Streaming a compressed archive's members to the workers while packing:
 * a reader thread walks the archive once, front to back, and holds each
 * member the pack needs until a worker takes it. Members are taken in
 * listing order; an archive stored in another order is fine as long as
 * the members waiting stay within the memory limit.
 */
#ifndef IMGPACK_SRC_ARCHIVE_STREAM_H
#define IMGPACK_SRC_ARCHIVE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "sources.h"

/* Members read ahead of the workers are held up to this many bytes. */
#define IMGPACK__STREAM_MAX_HELD ((size_t)256 << 20)

typedef struct imgpack__archive_stream imgpack__archive_stream;

/* Starts the reader thread for items [first, end) of `src` (a STREAM
   source), which must outlive the stream, holding at most `max_held` bytes
   of members read ahead (IMGPACK__STREAM_MAX_HELD when packing). */
imgpack_status imgpack__archive_stream_start(imgpack__archive_stream **out,
                                             const imgpack__source *src,
                                             uint64_t first, uint64_t end,
                                             size_t max_held,
                                             imgpack__error *err);

/*
 * Copies item `position`'s bytes into *buffer (grown as needed, *capacity
 * its size) and sets *size, waiting until the reader has them. Returns
 * IMGPACK_OK, or IMGPACK_ERR_DECODE / IMGPACK_ERR_NOMEM with a reason (the
 * archive broke before the member, or it could not be held).
 */
imgpack_status imgpack__archive_stream_take(imgpack__archive_stream *s,
                                            uint64_t position, uint8_t **buffer,
                                            size_t *capacity, size_t *size,
                                            char reason[IMGPACK__REASON_SIZE]);

/* Stops the reader, joins it and frees everything; accepts NULL. If the
   stream failed as a whole (members too far out of order to hold), sets
   `err` to say so (IMGPACK_ERR_UNSUPPORTED). */
void imgpack__archive_stream_stop(imgpack__archive_stream *s,
                                  imgpack__error *err);

#endif
