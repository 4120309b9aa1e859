/*
 * Read-ahead: a batch's records fetched from the disk with few, large
 * requests, all queued at once, before they are converted.
 *
 * Why. The reader maps each store with MDB_NORDAHEAD, so a record first
 * touched through the map arrives as one synchronous 4 KiB page fault
 * after another: a 150 KB raw record is 37 faults in a row, each waiting
 * for the disk. (Turning the kernel's read-around back on is no fix: it
 * reads around the faulting page, not along the record, and gives up
 * after 100 misses.) But a record is one byte range of data.mdb, since
 * LMDB keeps a large value on contiguous overflow pages, and finding that
 * range costs no I/O (imgpack__reader_locate). So before the records are
 * read, each is located, the page-aligned ranges are sorted, ranges that
 * touch or overlap are merged, and each merged range is handed to
 * madvise(MADV_WILLNEED): the kernel queues reads for all of them at once
 * as large requests and returns. The conversion's page faults then find
 * the pages in the page cache, or wait for a read already in flight.
 *
 * Why madvise. It reads into the page cache, which the conversion reads
 * anyway, so nothing is copied and no memory of ours holds the data; the
 * reads are asynchronous, so one thread queues a whole batch. A pread into
 * a staging buffer needs threads to have several reads in flight, memory
 * for the buffer and a second copy, and would have to replace the map as
 * the source of every read path; docs/BENCHMARKS.md ("Larger than
 * memory") has the measurements.
 *
 * Bounds. One call reads ahead at most the reader's prefetch limit
 * (IMGPACK_PREFETCH_DEFAULT_LIMIT unless set), counted in whole pages;
 * indices past it are left to be faulted in as before. What is read ahead
 * is page cache, not memory of ours: the kernel may drop it under
 * pressure, which costs a second read, never a wrong byte. Ranges are
 * gathered SPANS_PER_ROUND at a time on the stack, so a call allocates
 * nothing.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reader_internal.h"
#include "reader_open.h"

/* Ranges sorted and merged together: a batch of up to this many records
   goes out in one round (16 bytes each, on the stack). */
#define SPANS_PER_ROUND 512

typedef struct span {
    uintptr_t begin, end; /* page-aligned addresses in a shard's map */
} span;

static int by_begin(const void *a, const void *b) {
    uintptr_t x = ((const span *)a)->begin, y = ((const span *)b)->begin;
    return (x > y) - (x < y);
}

/* Sorts, merges and requests spans[0..n-1]. A failed madvise (the kernel
   may refuse when memory is short) only loses the hint. */
static void request(span *spans, size_t n) {
    qsort(spans, n, sizeof *spans, by_begin);
    for (size_t i = 0; i < n;) {
        span merged = spans[i++];
        while (i < n && spans[i].begin <= merged.end) {
            if (spans[i].end > merged.end)
                merged.end = spans[i].end;
            i++;
        }
        (void)madvise((void *)merged.begin, merged.end - merged.begin,
                      MADV_WILLNEED);
    }
}

/* The read-ahead of imgpack_reader_prefetch, within the caller's session;
   stops at the first index that cannot be located, with the reason in
   the slot. */
static imgpack_status read_ahead(imgpack_reader *r, imgpack__read_slot *s,
                                 const uint64_t *indices, uint64_t n) {
    span spans[SPANS_PER_ROUND];
    size_t count = 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uint64_t budget =
        atomic_load_explicit(&r->prefetch_limit, memory_order_relaxed);
    imgpack_status status = IMGPACK_OK;
    for (uint64_t i = 0; i < n && budget > 0; i++) {
        const uint8_t *data;
        size_t size;
        uint32_t shard;
        if ((status = imgpack__reader_locate(r, s, indices[i], &shard, &data,
                                             &size)))
            break;
        span sp = {(uintptr_t)data & ~(page - 1),
                   ((uintptr_t)data + size + page - 1) & ~(page - 1)};
        if (sp.end - sp.begin > budget)
            sp.end = sp.begin + (uintptr_t)budget;
        budget -= sp.end - sp.begin;
        spans[count++] = sp;
        if (count == SPANS_PER_ROUND) {
            request(spans, count);
            count = 0;
        }
    }
    request(spans, count);
    return status;
}

imgpack_status imgpack_reader_prefetch(imgpack_reader *r,
                                       const uint64_t *indices, uint64_t n) {
    imgpack__read_slot *s;
    imgpack_status status = imgpack__reader_begin(r, &s);
    if (status)
        return status;
    if (n > 0 && !indices)
        status = imgpack__error_set(&s->err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: prefetch: no indices", r->dir);
    else
        status = read_ahead(r, s, indices, n);
    imgpack__reader_end(r, s);
    return status;
}

void imgpack__reader_readahead(imgpack_reader *r, const uint64_t *indices,
                               uint64_t n) {
    imgpack__read_slot *s;
    if (atomic_load_explicit(&r->prefetch_limit, memory_order_relaxed) == 0 ||
        imgpack__reader_begin(r, &s) != IMGPACK_OK)
        return;
    (void)read_ahead(r, s, indices, n);
    imgpack__reader_end(r, s);
}

imgpack_status imgpack_reader_set_prefetch_limit(imgpack_reader *r,
                                                 uint64_t bytes) {
    if (!r || bytes > IMGPACK_PREFETCH_MAX_LIMIT)
        return IMGPACK_ERR_INVALID_ARG;
    atomic_store_explicit(&r->prefetch_limit, bytes, memory_order_relaxed);
    return IMGPACK_OK;
}
