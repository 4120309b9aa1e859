/*
 * Reads a whole store the way a trainer does, for tests/python/
 * test_flips.py: open with the default checks, all labels, every record
 * decoded, then every record again as one uint8 batch. Prints one line per
 * read, "<what> <status> <FNV-1a of what was served>", so the test can
 * compare each success with the undamaged store's.
 *
 * A fatal signal prints "crash <signal> <module>" (the shared object
 * holding the faulting instruction, from dladdr on the PC the kernel
 * saved) and exits 70: the test tolerates a crash inside liblmdb, which
 * no bound of ours can prevent, and fails any other.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "imgpack/reader.h"

#define CRASH_EXIT 70

static uint64_t fnv(const void *data, size_t size, uint64_t h) {
    const uint8_t *p = data;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void on_fault(int sig, siginfo_t *info, void *context) {
    const ucontext_t *uc = context;
    Dl_info where;
    const char *module = "unknown";
    char line[512];
#if defined(__x86_64__)
    void *pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    void *pc = (void *)uc->uc_mcontext.pc;
#else
    void *pc = NULL;
#endif
    if (pc && dladdr(pc, &where) && where.dli_fname)
        module = where.dli_fname;
    int n = snprintf(line, sizeof line, "crash %d %s\n", sig, module);
    fflush(stdout);
    if (write(STDOUT_FILENO, line, (size_t)n) < 0)
        _exit(CRASH_EXIT + 1);
    _exit(CRASH_EXIT);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    imgpack_reader *r = NULL;
    imgpack_batcher *b = NULL;
    imgpack_batch_options *opts = NULL;
    imgpack_record rec;
    if (argc != 2) {
        fprintf(stderr, "usage: flip_read STORE\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    imgpack_status status = imgpack_reader_open(&r, argv[1], 0);
    printf("open %d\n", (int)status);
    if (status != IMGPACK_OK)
        goto out;
    uint64_t count = imgpack_reader_count(r);
    uint32_t *labels = calloc(count + 1, sizeof *labels);
    status = imgpack_reader_labels(r, labels, count);
    printf("labels %d %016" PRIx64 "\n", (int)status,
           status ? 0 : fnv(labels, count * 4, 14695981039346656037ull));
    free(labels);
    for (uint64_t i = 0; i < count; i++) {
        /* get first: its size says how much decode needs */
        status = imgpack_reader_get(r, i, &rec);
        uint64_t need = (uint64_t)rec.width * rec.height * rec.channels;
        uint8_t *pixels = status ? NULL : malloc(need ? need : 1);
        if (status == IMGPACK_OK)
            status = imgpack_reader_decode(r, i, pixels, need, &rec);
        uint64_t h = 14695981039346656037ull;
        if (status == IMGPACK_OK) {
            h = fnv(pixels, need, h);
            h = fnv(&rec.label, sizeof rec.label, h);
        }
        printf("record %" PRIu64 " %d %016" PRIx64 "\n", i, (int)status,
               status ? 0 : h);
        free(pixels);
    }
    if (imgpack_reader_width(r) && imgpack_reader_height(r) && count > 0 &&
        imgpack_batch_options_create(&opts) == IMGPACK_OK &&
        imgpack_batch_options_set_dtype(opts, IMGPACK_DTYPE_UINT8) ==
            IMGPACK_OK &&
        imgpack_batcher_create(&b, r, opts) == IMGPACK_OK) {
        uint64_t bytes = imgpack_batcher_image_bytes(b) * count;
        uint8_t *out = malloc(bytes);
        uint64_t *indices = malloc(count * sizeof *indices);
        int64_t *batch_labels = malloc(count * sizeof *batch_labels);
        for (uint64_t i = 0; i < count; i++)
            indices[i] = i;
        status = imgpack_batcher_run(b, indices, count, 0, out, bytes,
                                     batch_labels);
        uint64_t h = 14695981039346656037ull;
        if (status == IMGPACK_OK)
            h = fnv(batch_labels, count * sizeof *batch_labels,
                    fnv(out, bytes, h));
        printf("batch %d %016" PRIx64 "\n", (int)status, status ? 0 : h);
        free(out);
        free(indices);
        free(batch_labels);
    }
out:
    imgpack_batcher_destroy(b);
    imgpack_batch_options_destroy(opts);
    imgpack_reader_close(r);
    return 0;
}
