/*
 * imgpack_verify: runs the checks (verify_records.c, verify_catalog.c,
 * verify_sources.c) in a child process and reports what they find.
 *
 * Surviving LMDB. LMDB has no page checksums, and a damaged B-tree can
 * crash liblmdb itself. So the checks run in a forked child; the calling
 * process only reads. The child sends each problem down a pipe as it
 * finds it, one frame each (kind, record, length, text), and keeps, in
 * memory shared with the parent, what it is doing, the record it reads,
 * and at the end its counts and status. The parent calls the caller's
 * callback for each frame, in its own process and thread, so a callback
 * may keep what it is given; if a signal kills the child, every problem
 * sent before is kept and the parent reports "LMDB structure damaged near
 * record N".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "verify.h"

/* A problem's line on the stack; longer ones are cut (a path is at most
   PATH_MAX, and no message holds more than two). */
#define LINE_SIZE (3 * 4096)

/* The head of a problem's frame on the pipe; `length` bytes of text
   follow. */
typedef struct frame {
    int32_t kind;
    uint32_t length;
    uint64_t record;
} frame;

/* Writes all `size` bytes to `fd`; 0, or -1 when the pipe failed. */
static int write_all(int fd, const void *data, size_t size) {
    const char *at = data;
    while (size > 0) {
        ssize_t n = write(fd, at, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        at += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Reads exactly `size` bytes; 1, or 0 at the end of the pipe (also in
   the middle of a frame: a child killed while writing). */
static int read_all(int fd, void *data, size_t size) {
    char *at = data;
    while (size > 0) {
        ssize_t n = read(fd, at, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        at += n;
        size -= (size_t)n;
    }
    return 1;
}

void imgpack__verify_problem(imgpack__verify *v, int kind, uint64_t record,
                             const char *format, ...) {
    char line[LINE_SIZE];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    /* vsnprintf says how long the line would have been: cut to fit. */
    size_t length = n < 0                     ? 0
                    : (size_t)n < sizeof line ? (size_t)n
                                              : sizeof line - 1;
    frame f = {kind, (uint32_t)length, record};
    /* A parent gone leaves no one to tell: the checks go on regardless. */
    if (write_all(v->fd, &f, sizeof f) == 0)
        write_all(v->fd, line, f.length);
}

void imgpack__verify_set_phase(imgpack__verify *v,
                               enum imgpack__verify_phase phase) {
    atomic_store(&v->progress->phase, (int)phase);
}

int imgpack__verify_store_meta(imgpack__verify *v, const char *key, char *out,
                               size_t capacity) {
    uint64_t size = 0;
    if (imgpack_reader_meta(v->reader, key, (uint8_t *)out, capacity - 1,
                            &size) != IMGPACK_OK ||
        size >= capacity)
        return 0;
    out[size] = '\0';
    return 1;
}

/* The child's status when it cannot check at all, with its message. */
static imgpack_status child_fail(imgpack__verify *v, imgpack_status status,
                                 const char *message) {
    snprintf(v->progress->error, sizeof v->progress->error, "%s", message);
    return status;
}

/* Opens the store; damaged metadata is a finding, not a failure. */
static imgpack_status open_store(imgpack__verify *v) {
    char message[IMGPACK_VERIFY_ERROR_SIZE];
    imgpack_status status = imgpack_reader_open(
        &v->reader, v->dir, IMGPACK_OPEN_INCOMPLETE | IMGPACK_OPEN_VERIFY);
    if (status == IMGPACK_ERR_CORRUPT ||
        status == IMGPACK_ERR_VERSION_MISMATCH) {
        imgpack__verify_problem(v, IMGPACK_PROBLEM_STORE,
                                IMGPACK_PROBLEM_NO_RECORD, "store: %s",
                                imgpack_reader_errmsg(v->reader));
        return IMGPACK_OK;
    }
    if (status != IMGPACK_OK)
        return child_fail(v, status, imgpack_reader_errmsg(v->reader));
    v->count = imgpack_reader_count(v->reader);
    v->complete = imgpack_reader_is_complete(v->reader) != 0;
    atomic_store(&v->progress->opened, 1);
    v->labels = malloc(v->count ? v->count * sizeof *v->labels : 1);
    v->sizes = malloc(v->count ? v->count * sizeof *v->sizes : 1);
    if (!v->labels || !v->sizes) {
        snprintf(message, sizeof message,
                 "%s: out of memory for %" PRIu64 " records", v->dir, v->count);
        return child_fail(v, IMGPACK_ERR_NOMEM, message);
    }
    return IMGPACK_OK;
}

/* Runs every check: the checking child's whole life. */
static imgpack_status run_checks(imgpack__verify *v) {
    imgpack_status status = open_store(v);
    if (status != IMGPACK_OK || !atomic_load(&v->progress->opened))
        return status;
    atomic_store(&v->progress->count, v->count);
    atomic_store(&v->progress->classes, imgpack_reader_num_classes(v->reader));
    atomic_store(&v->progress->complete, v->complete);
    imgpack__verify_meta(v);
    imgpack__verify_records(v);
    if (v->complete)
        imgpack__verify_label_metadata(v);
    imgpack__verify_catalog(v);
    if (v->sources)
        imgpack__verify_sources(v);
    return IMGPACK_OK;
}

/* The child: checks, then leaves without running the caller's atexit
   handlers or flushing its stdio, which belong to the parent. */
static void child(imgpack__verify *v) {
    /* A crash here is damage in the store, reported by the parent: no
       core file. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    atomic_store(&v->progress->status, (int)run_checks(v));
    sqlite3_close(v->db);
    free(v->pixels);
    free(v->sizes);
    free(v->labels);
    imgpack_reader_close(v->reader);
    close(v->fd);
    _exit(0);
}

/* What the child was doing when a signal killed it. */
static const char *phase_text(int phase) {
    switch (phase) {
    case IMGPACK__VERIFY_OPEN:
        return "opening the store";
    case IMGPACK__VERIFY_META:
        return "walking the metadata";
    case IMGPACK__VERIFY_LABELS:
        return "reading the labels";
    case IMGPACK__VERIFY_CATALOG:
        return "comparing the catalog with the store";
    default:
        return "hashing source files";
    }
}

/* Delivers one problem to the caller and counts it. */
static void deliver(int kind, uint64_t record, const char *message,
                    void (*on_problem)(void *, const imgpack_problem *),
                    void *ctx, imgpack_verify_summary *out) {
    imgpack_problem p = {kind, record, message};
    if (kind != IMGPACK_PROBLEM_NOTE)
        out->problems++;
    if (on_problem)
        on_problem(ctx, &p);
}

/* Says how the checking child died of `sig`. */
static void report_crash(const imgpack__verify_progress *progress, int sig,
                         void (*on_problem)(void *, const imgpack_problem *),
                         void *ctx, imgpack_verify_summary *out) {
    char line[512];
    int phase = atomic_load(&progress->phase);
    uint64_t record = atomic_load(&progress->record);
    if (phase == IMGPACK__VERIFY_RECORDS) {
        snprintf(line, sizeof line,
                 "store: LMDB structure damaged near record %" PRIu64
                 " (the check was killed by signal %d, %s, inside LMDB's "
                 "B-tree walk)",
                 record, sig, strsignal(sig));
        deliver(IMGPACK_PROBLEM_STORE, record, line, on_problem, ctx, out);
        return;
    }
    if (phase == IMGPACK__VERIFY_SOURCES)
        snprintf(line, sizeof line,
                 "source: verify was killed by signal %d, %s, while %s", sig,
                 strsignal(sig), phase_text(phase));
    else
        snprintf(line, sizeof line,
                 "store: LMDB structure damaged (the check was killed by "
                 "signal %d, %s, while %s)",
                 sig, strsignal(sig), phase_text(phase));
    deliver(phase == IMGPACK__VERIFY_SOURCES ? IMGPACK_PROBLEM_SOURCE
                                             : IMGPACK_PROBLEM_STORE,
            IMGPACK_PROBLEM_NO_RECORD, line, on_problem, ctx, out);
}

/* Reads the child's frames until it closes the pipe, delivering each. */
static imgpack_status
read_problems(int fd, void (*on_problem)(void *, const imgpack_problem *),
              void *ctx, imgpack_verify_summary *out) {
    char *text = NULL;
    size_t capacity = 0;
    frame f;
    while (read_all(fd, &f, sizeof f)) {
        if (f.length + 1 > capacity) {
            char *bigger = realloc(text, f.length + 1);
            if (!bigger) {
                free(text);
                return IMGPACK_ERR_NOMEM;
            }
            text = bigger;
            capacity = f.length + 1;
        }
        if (!read_all(fd, text, f.length))
            break; /* the child died mid-frame */
        text[f.length] = '\0';
        deliver(f.kind, f.record, text, on_problem, ctx, out);
    }
    free(text);
    return IMGPACK_OK;
}

imgpack_status
imgpack_verify(const char *store_dir, const imgpack_verify_options *opts,
               void (*on_problem)(void *ctx, const imgpack_problem *p),
               void *ctx, imgpack_verify_summary *out) {
    imgpack__verify v = {0};
    imgpack_status status = IMGPACK_OK;
    int fds[2] = {-1, -1}, wstatus;
    memset(out, 0, sizeof *out);
    if (!store_dir)
        return IMGPACK_ERR_INVALID_ARG;
    v.dir = store_dir;
    v.sources = opts ? opts->sources : NULL;
    v.progress = mmap(NULL, sizeof *v.progress, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (v.progress == MAP_FAILED) {
        snprintf(out->error, sizeof out->error,
                 "%s: cannot share memory with the check: %s", store_dir,
                 strerror(errno));
        return imgpack__status_from_errno(errno);
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(out->error, sizeof out->error,
                 "%s: cannot start the check: %s", store_dir, strerror(errno));
        status = imgpack__status_from_errno(errno);
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out->error, sizeof out->error,
                 "%s: cannot start the check: %s", store_dir, strerror(errno));
        status = imgpack__status_from_errno(errno);
        goto out;
    }
    if (pid == 0) {
        close(fds[0]);
        v.fd = fds[1];
        child(&v);
    }
    close(fds[1]);
    fds[1] = -1;
    status = read_problems(fds[0], on_problem, ctx, out);
    /* Closed before waiting: a child still writing then fails instead of
       blocking on a full pipe. */
    close(fds[0]);
    fds[0] = -1;
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) {
            snprintf(out->error, sizeof out->error,
                     "%s: cannot wait for the check: %s", store_dir,
                     strerror(errno));
            status = imgpack__status_from_errno(errno);
            goto out;
        }
    if (status != IMGPACK_OK) {
        snprintf(out->error, sizeof out->error,
                 "%s: out of memory reading the check's findings", store_dir);
        goto out;
    }
    out->records = atomic_load(&v.progress->count);
    out->classes = atomic_load(&v.progress->classes);
    out->complete = atomic_load(&v.progress->complete);
    out->opened = atomic_load(&v.progress->opened);
    if (WIFSIGNALED(wstatus)) {
        out->signal = WTERMSIG(wstatus);
        report_crash(v.progress, out->signal, on_problem, ctx, out);
    } else if ((status = atomic_load(&v.progress->status)) != IMGPACK_OK) {
        snprintf(out->error, sizeof out->error, "%s", v.progress->error);
    }
out:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    munmap(v.progress, sizeof *v.progress);
    return status;
}
