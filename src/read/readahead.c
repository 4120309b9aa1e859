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
 * madvise(MADV_WILLNEED), in pieces the kernel reads whole (PIECE below):
 * the kernel queues reads for all of them at once as large requests and
 * returns. The conversion's page faults then find the pages in the page
 * cache, or wait for a read already in flight.
 *
 * Why madvise. It reads into the page cache, which the conversion reads
 * anyway, so nothing is copied and no memory of ours holds the data; the
 * reads are asynchronous, so one thread queues a whole batch. A pread into
 * a staging buffer needs threads to have several reads in flight, memory
 * for the buffer and a second copy, and would have to replace the map as
 * the source of every read path; docs/BENCHMARKS.md ("Larger than
 * memory") has the measurements.
 *
 * Warm cache. A round whose probed records are all in the page cache is
 * not requested at all (PROBES below), so a store that fits in memory
 * pays a few microseconds per batch once it is cached.
 *
 * Pages dropped before use. Under a memory limit the kernel may drop
 * read-ahead pages before they are read, or read fewer than asked (its
 * read-ahead gives up when memory is short), and with MDB_NORDAHEAD each
 * missing page would again be a synchronous fault. So while recent rounds
 * found records uncached, imgpack__reader_pixels asks once more for each
 * record's range just before converting it (imgpack__reader_rearm): pages
 * present cost a lookup, missing ones come as one request. Measured: 50
 * to 100 major faults per 3,000-record epoch under a cap of half the
 * store, from 600 to 1,600.
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

/*
 * Records whose first page is checked (mincore) before a round is
 * requested. When the store is in the page cache, madvise would cost
 * about 3.5 us per 150 KB record to find every page present (most of it
 * the kernel's per-page lookups; a batch of 256 then pays 0.9 ms, a tenth
 * of the batch's own time), while 16 probes cost about 25 us. The price:
 * when a fraction f of the store is cached, a round is skipped with
 * probability f^16 (f = 0.9: 19%), and its uncached records come in
 * through imgpack__reader_rearm or page faults.
 */
#define PROBES 16

/*
 * Rounds found cached after the last one that was not, before reads stop
 * re-asking for each record's missing pages (imgpack__reader_rearm). The
 * Loader asks for each batch twice (ahead, and when it runs), the second
 * time often cached even when the store is not; a store that fits in
 * memory stops re-asking a few batches into its second epoch.
 */
#define REARM_ROUNDS 8

/*
 * Most bytes asked for in one madvise call. Linux reads at most
 * max(device's largest request, file's read-ahead window) pages per
 * MADV_WILLNEED call and silently drops the rest of the range
 * (mm/readahead.c: force_page_cache_ra; madvise and fadvise both end
 * there). Records packed in index order lie end to end, so a merged range
 * easily outgrows that: on a disk with an 8 MiB window, 60 consecutive
 * raw records (8.7 MiB) lost the last 172 pages, 5% of a 100-record
 * prefetch. 128 KiB is the kernel's default window (VM_READAHEAD_PAGES),
 * so a piece this size is read whole unless an administrator shrank the
 * window below it (2 MiB pieces would be cut to 1.25 MiB on a disk with
 * that window and the common 1,280 KiB largest request). The kernel itself
 * reads a range 2 MiB at a time, and the block layer merges the reads of
 * adjacent pieces: on the VM this was measured on (Linux 6.18, virtio disk, 8
 * MiB window), 100 evicted raw records (14.5 MiB) asked for in 128 KiB pieces
 * were resident after 14 to 20 ms, as with 2 MiB pieces, the calls taking 3 to
 * 8 ms either way, in reads of 0.5 MiB on average; asked for in one call, 2,048
 * of their 3,704 pages came and no more.
 */
#define PIECE ((uintptr_t)128 << 10)

typedef struct span {
    uintptr_t begin, end; /* page-aligned addresses in a shard's map */
} span;

static int by_begin(const void *a, const void *b) {
    uintptr_t x = ((const span *)a)->begin, y = ((const span *)b)->begin;
    return (x > y) - (x < y);
}

/* 1 if every probed record starts on a page already in the page cache:
   then, most likely, the whole round is cached. */
static int cached(const span *spans, size_t n) {
    size_t probes = n < PROBES ? n : PROBES;
    for (size_t p = 0; p < probes; p++) {
        unsigned char resident = 0;
        const span *sp = &spans[p * n / probes];
        if (mincore((void *)sp->begin, 1, &resident) != 0 || !(resident & 1))
            return 0;
    }
    return 1;
}

/* Asks for [begin, end), page-aligned addresses of a map, piece by piece.
   A failed madvise (the kernel may refuse when memory is short) only
   loses the hint. */
static void will_need(uintptr_t begin, uintptr_t end) {
    for (uintptr_t at = begin; at < end; at += PIECE)
        (void)madvise((void *)at, end - at < PIECE ? end - at : PIECE,
                      MADV_WILLNEED);
}

/* Sorts, merges and requests spans[0..n-1], unless the probes say they are
   cached. */
static void request(imgpack_reader *r, span *spans, size_t n) {
    if (n == 0)
        return;
    /* A race between threads only misjudges a round or two; relaxed. */
    int left = atomic_load_explicit(&r->uncached, memory_order_relaxed);
    if (cached(spans, n)) {
        if (left > 0)
            atomic_store_explicit(&r->uncached, left - 1, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&r->uncached, REARM_ROUNDS, memory_order_relaxed);
    qsort(spans, n, sizeof *spans, by_begin);
    for (size_t i = 0; i < n;) {
        span merged = spans[i++];
        while (i < n && spans[i].begin <= merged.end) {
            if (spans[i].end > merged.end)
                merged.end = spans[i].end;
            i++;
        }
        will_need(merged.begin, merged.end);
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
            request(r, spans, count);
            count = 0;
        }
    }
    request(r, spans, count);
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

void imgpack__reader_rearm(imgpack_reader *r, const uint8_t *data,
                           size_t size) {
    if (!atomic_load_explicit(&r->uncached, memory_order_relaxed) ||
        atomic_load_explicit(&r->prefetch_limit, memory_order_relaxed) == 0)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = (uintptr_t)data & ~(page - 1);
    uintptr_t end = ((uintptr_t)data + size + page - 1) & ~(page - 1);
    will_need(begin, end);
}
