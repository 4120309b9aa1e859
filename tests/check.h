/*
 * Assertions for the C tests: each failure prints file, line, the
 * expression and both values, then exits non-zero.
 */
#ifndef IMGPACK_TESTS_CHECK_H
#define IMGPACK_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgpack/imgpack.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                  \
    do {                                                                \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
        if (check_a_ != check_b_) {                                     \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",   \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);    \
            exit(1);                                                    \
        }                                                               \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                \
    do {                                                                  \
        const char *check_a_ = (a), *check_b_ = (b);                      \
        if (strcmp(check_a_, check_b_) != 0) {                            \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);      \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

/* Checks that a call returned IMGPACK_OK; prints the code's name if not. */
#define CHECK_OK(call)                                                \
    do {                                                              \
        int check_s_ = (call);                                        \
        if (check_s_ != IMGPACK_OK) {                                 \
            fprintf(stderr, "%s:%d: %s returned %s (%s)\n", __FILE__, \
                    __LINE__, #call, imgpack_status_name(check_s_),   \
                    imgpack_strerror(check_s_));                      \
            exit(1);                                                  \
        }                                                             \
    } while (0)

#endif
