/*
 * Large buffers in transparent huge pages. The first touch of fresh memory
 * costs one page fault per page, and a fault is far dearer than the bytes
 * it maps. A decoder's pixel buffer grows to the largest image a worker
 * meets (11.5 MiB for a 2400x1600 photo): in 4 KiB pages that growth cost
 * about 2,800 faults, some 28 ms of a 300-image pack on this project's VM
 * (docs/BENCHMARKS.md, "Where the time goes"); in 2 MiB pages, a handful.
 *
 * A buffer of at least IMGPACK__HUGE_PAGE gets its own mapping, aligned to
 * the huge page size (the kernel only backs whole aligned huge pages) and
 * advised MADV_HUGEPAGE, which takes effect under both the "always" and the
 * "madvise" THP settings. Where THP is off or unavailable the advice is
 * ignored and the mapping behaves like any other.
 */
#include "hugemem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

static size_t mapped_length(size_t size) {
    return (size + IMGPACK__HUGE_PAGE - 1) & ~(IMGPACK__HUGE_PAGE - 1);
}

void *imgpack__huge_alloc(size_t size) {
    if (size < IMGPACK__HUGE_PAGE)
        return malloc(size);
    size_t length = mapped_length(size);
    /* One huge page more than needed, so an aligned start lies inside;
       the unaligned head and the tail are handed back at once. */
    uint8_t *base =
        mmap(NULL, length + IMGPACK__HUGE_PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)base + IMGPACK__HUGE_PAGE - 1) &
                      ~(uintptr_t)(IMGPACK__HUGE_PAGE - 1);
    uint8_t *buffer = (uint8_t *)start;
    size_t head = (size_t)(buffer - base);
    if (head > 0)
        munmap(base, head);
    munmap(buffer + length, IMGPACK__HUGE_PAGE - head);
#ifdef MADV_HUGEPAGE
    madvise(buffer, length, MADV_HUGEPAGE);
#endif
    return buffer;
}

void imgpack__huge_free(void *buffer, size_t size) {
    if (!buffer)
        return;
    if (size < IMGPACK__HUGE_PAGE)
        free(buffer);
    else
        munmap(buffer, mapped_length(size));
}
