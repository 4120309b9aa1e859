/*
 * The small counter-based generator behind shuffles, random crops and
 * flips: splitmix64's mixer over a counter. Cheap to seed per image, so
 * results depend on (seed, epoch, record) alone and never on thread
 * timing (src/read/augment.c makes the keys).
 */
#ifndef IMGPACK_SRC_RANDOM_H
#define IMGPACK_SRC_RANDOM_H

#include <stdint.h>

/* splitmix64's step and finalizer: a bijective mix of 64 bits. */
static inline uint64_t imgpack__mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* A uniform value in 0..bound-1 (bound > 0) from the stream *state. */
static inline uint64_t imgpack__uniform(uint64_t *state, uint64_t bound) {
    /* Rejecting the values below 2^64 mod bound removes modulo bias. */
    uint64_t threshold = (0 - bound) % bound, x;
    do
        x = imgpack__mix64((*state)++);
    while (x < threshold);
    return x % bound;
}

/* A double uniform in [0, 1) from the stream *state: the top 53 bits of
   a draw, so every value is a multiple of 2^-53. */
static inline double imgpack__uniform01(uint64_t *state) {
    return (double)(imgpack__mix64((*state)++) >> 11) * 0x1.0p-53;
}

#endif
