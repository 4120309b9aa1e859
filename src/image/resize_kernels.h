/*
 * The resampling kernels of resize.c and the coefficient tables they read.
 *
 * resize.c decides what to compute (geometry, Pillow's coefficients, the
 * cache, the crop); resize_kernels.c runs the two passes over the pixels,
 * with AVX2 kernels chosen at run time and their portable scalar twins.
 * They share the `axis` table below: resize.c fills its int32 weights,
 * imgpack__resize_lay_out_wide adds the int16 layouts only the AVX2 kernels
 * read, so that layout and its readers live in one file.
 */
#ifndef IMGPACK_SRC_RESIZE_KERNELS_H
#define IMGPACK_SRC_RESIZE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RESIZE_X86 1
#endif

/* Pillow's fixed point: 22 fractional bits leave 8 bits for the sample and
   2 of headroom in a 32-bit int. */
#define PRECISION_BITS 22

/* The AVX2 horizontal kernels take the taps four at a time (the 12 bytes of
   four RGB pixels fit one 16-byte load) and the output in blocks of
   BLOCK indexes, aligned to multiples of BLOCK so that the weights can be
   laid out per axis, whatever the crop. Weight rows are padded to TAPS. */
#define TAPS 4
#define BLOCK 8

/* One axis of the resampling, from in_size samples to out_size. */
typedef struct axis {
    uint32_t in_size, out_size; /* the cache key; out_size 0: empty slot */
    uint64_t last_used;
    uint32_t kstride; /* weights per output index, >= every count */
    int32_t *first;   /* first source index of each output index */
    int32_t *count;   /* how many source indexes it reads, >= 1 */
    int32_t *weights; /* Pillow's fixed-point weights, 0 past count */
    /* AVX2 layouts, built only when the CPU has AVX2 (see
       imgpack__resize_lay_out_wide) */
    uint32_t groups;            /* steps of TAPS taps per output index */
    uint32_t gray_end, rgb_end; /* end of the blocks whose loads stay in
                                   the row, a multiple of BLOCK */
    int16_t *gray_wide, *rgb_wide;
    void *block;       /* one allocation holding all the arrays above */
    size_t block_size; /* its bytes: kept when the slot is rebuilt, as
                          RandomResizedCrop boxes rebuild one per image */
} axis;

#ifdef RESIZE_X86
/* Fills a->gray_end, a->rgb_end and the gray_wide and rgb_wide layouts
   from a->first, a->weights and a->groups (set by the caller). */
void imgpack__resize_lay_out_wide(axis *a);
#endif

/* The horizontal pass on `rows` rows of `channels` bytes per pixel, output
   columns [x0, x1) of axis `a`; simd non-zero picks the AVX2 kernels, only
   where the CPU has them. */
void imgpack__resize_horizontal_pass(int simd, const axis *a, uint32_t channels,
                                     const uint8_t *src, size_t src_stride,
                                     uint32_t rows, uint32_t x0, uint32_t x1,
                                     uint8_t *dst, size_t dst_stride);

/* The vertical pass for output rows [y0, y1) of axis `a`; `src` holds
   source rows from src_row0 on, `width` bytes each. */
void imgpack__resize_vertical_pass(int simd, const axis *a, const uint8_t *src,
                                   size_t src_stride, int32_t src_row0,
                                   uint32_t y0, uint32_t y1, size_t width,
                                   uint8_t *dst, size_t dst_stride);

#endif
