/*
 * Large buffers backed by transparent huge pages where the system offers
 * them (see hugemem.c for why). Sizes below IMGPACK__HUGE_PAGE come from
 * malloc as usual.
 */
#ifndef IMGPACK_SRC_HUGEMEM_H
#define IMGPACK_SRC_HUGEMEM_H

#include <stddef.h>

/* The huge page size of x86-64 and of most arm64 kernels. */
#define IMGPACK__HUGE_PAGE ((size_t)2 << 20)

/* `size` bytes, uninitialised, or NULL when out of memory. */
void *imgpack__huge_alloc(size_t size);

/* Releases what imgpack__huge_alloc(size) returned; `size` must be the same.
   NULL is accepted. */
void imgpack__huge_free(void *buffer, size_t size);

#endif
