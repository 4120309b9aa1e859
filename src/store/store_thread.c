/*
 * The store's thread (store_thread.h). The writer appends ops (begin, put,
 * commit) to a draft list of its own and publishes the list to the thread
 * a chunk at a time, at each commit, and before it waits; the thread runs
 * ops in order. A failure stops the running of ops: the thread aborts its
 * batch, frees what is still handed to it, and the writer sees the
 * failure at its next call.
 */
#include "store_thread.h"

#include <stdlib.h>
#include <string.h>

typedef enum op_kind { OP_BEGIN, OP_PUT, OP_COMMIT } op_kind;

struct imgpack__store_op {
    imgpack__store_op *next;
    op_kind kind;
    size_t room;    /* BEGIN */
    uint64_t index; /* PUT */
    uint8_t *value; /* PUT: the record, owned */
    size_t size;
    imgpack__meta_entry *meta; /* COMMIT: entries, keys and values in one
                                  block with the op */
    size_t n_meta;
};

static void run_op(imgpack__store_thread *t, imgpack__store_op *op,
                   imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    switch (op->kind) {
    case OP_BEGIN:
        status = imgpack__store_begin(t->store, op->room, err);
        break;
    case OP_PUT:
        status =
            imgpack__store_put(t->store, op->index, op->value, op->size, err);
        break;
    case OP_COMMIT:
        status = imgpack__store_commit(t->store, op->meta, op->n_meta, err);
        break;
    }
    if (status != IMGPACK_OK)
        imgpack__store_abort(t->store);
}

static void free_op(imgpack__store_op *op) {
    free(op->value);
    free(op);
}

static void *thread_main(void *arg) {
    imgpack__store_thread *t = arg;
    imgpack__error err;
    imgpack__error_clear(&err);
    pthread_setname_np(pthread_self(), "imgpack-store");
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->head && !t->stopping)
            pthread_cond_wait(&t->work, &t->lock);
        imgpack__store_op *op = t->head;
        if (!op)
            break;
        t->head = op->next;
        if (!t->head)
            t->tail = NULL;
        int failed = t->error.code != IMGPACK_OK;
        pthread_mutex_unlock(&t->lock);
        /* Work unlocked; after a failure, only free what is handed over. */
        if (!failed)
            run_op(t, op, &err);
        pthread_mutex_lock(&t->lock);
        if (!failed && err.code != IMGPACK_OK)
            t->error = err;
        if (op->kind == OP_PUT)
            t->waiting_bytes -= op->size;
        else if (op->kind == OP_COMMIT)
            t->commits_done++;
        /* Wake the writer when what it waits for may have happened, not
           for every record put. */
        if (op->kind == OP_COMMIT || t->error.code != IMGPACK_OK ||
            (t->writer_wants &&
             t->waiting_bytes + t->writer_wants <= IMGPACK__STORE_THREAD_BYTES))
            pthread_cond_broadcast(&t->progress);
        free_op(op);
    }
    pthread_mutex_unlock(&t->lock);
    /* A batch begun and never committed is dropped, as its catalog rows
       are. The thread that began the transaction must end it. */
    imgpack__store_abort(t->store);
    return NULL;
}

imgpack_status imgpack__store_thread_start(imgpack__store_thread *t,
                                           imgpack__store *store,
                                           imgpack__error *err) {
    memset(t, 0, sizeof *t);
    t->store = store;
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                  "cannot start the store's thread");
    if (pthread_cond_init(&t->work, NULL) != 0) {
        pthread_mutex_destroy(&t->lock);
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                  "cannot start the store's thread");
    }
    if (pthread_cond_init(&t->progress, NULL) != 0) {
        pthread_cond_destroy(&t->work);
        pthread_mutex_destroy(&t->lock);
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                  "cannot start the store's thread");
    }
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
        pthread_cond_destroy(&t->progress);
        pthread_cond_destroy(&t->work);
        pthread_mutex_destroy(&t->lock);
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM,
                                  "cannot start the store's thread");
    }
    t->running = 1;
    return IMGPACK_OK;
}

/* The thread's failure as the writer's; under lock. */
static imgpack_status thread_failure(imgpack__store_thread *t,
                                     imgpack__error *err) {
    return imgpack__error_set(err, t->error.code, "%s", t->error.message);
}

/* Hands the draft to the thread, first waiting while a batch's bytes are
   already waiting. */
static imgpack_status publish(imgpack__store_thread *t, imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    pthread_mutex_lock(&t->lock);
    /* A draft bigger than the bound (one huge record) waits for all. */
    t->writer_wants = t->draft_bytes < IMGPACK__STORE_THREAD_BYTES
                          ? t->draft_bytes
                          : IMGPACK__STORE_THREAD_BYTES;
    while (t->error.code == IMGPACK_OK &&
           t->waiting_bytes + t->writer_wants > IMGPACK__STORE_THREAD_BYTES)
        pthread_cond_wait(&t->progress, &t->lock);
    t->writer_wants = 0;
    if (t->error.code != IMGPACK_OK)
        status = thread_failure(t, err);
    if (t->draft_head) {
        if (t->tail)
            t->tail->next = t->draft_head;
        else
            t->head = t->draft_head;
        t->tail = t->draft_tail;
        t->waiting_bytes += t->draft_bytes;
        for (imgpack__store_op *op = t->draft_head; op; op = op->next)
            t->commits_published += op->kind == OP_COMMIT;
        pthread_cond_signal(&t->work);
    }
    pthread_mutex_unlock(&t->lock);
    t->draft_head = t->draft_tail = NULL;
    t->draft_bytes = 0;
    return status;
}

static void draft(imgpack__store_thread *t, imgpack__store_op *op) {
    if (t->draft_tail)
        t->draft_tail->next = op;
    else
        t->draft_head = op;
    t->draft_tail = op;
}

imgpack_status imgpack__store_thread_begin(imgpack__store_thread *t,
                                           size_t room, imgpack__error *err) {
    imgpack__store_op *op = calloc(1, sizeof *op);
    if (!op)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    op->kind = OP_BEGIN;
    op->room = room;
    draft(t, op);
    return IMGPACK_OK;
}

imgpack_status imgpack__store_thread_put(imgpack__store_thread *t,
                                         uint64_t index, uint8_t *value,
                                         size_t size, imgpack__error *err) {
    imgpack__store_op *op = calloc(1, sizeof *op);
    if (!op) {
        free(value);
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    }
    op->kind = OP_PUT;
    op->index = index;
    op->value = value;
    op->size = size;
    draft(t, op);
    t->draft_bytes += size;
    return t->draft_bytes >= IMGPACK__STORE_THREAD_CHUNK ? publish(t, err)
                                                         : IMGPACK_OK;
}

imgpack_status imgpack__store_thread_commit(imgpack__store_thread *t,
                                            const imgpack__meta_entry *meta,
                                            size_t n_meta,
                                            imgpack__error *err) {
    size_t bytes = sizeof(imgpack__store_op) + n_meta * sizeof *meta;
    for (size_t i = 0; i < n_meta; i++)
        bytes += strlen(meta[i].key) + 1 + meta[i].size;
    imgpack__store_op *op = calloc(1, bytes);
    if (!op)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    op->kind = OP_COMMIT;
    op->meta = (imgpack__meta_entry *)(op + 1);
    op->n_meta = n_meta;
    char *at = (char *)(op->meta + n_meta);
    for (size_t i = 0; i < n_meta; i++) {
        size_t key = strlen(meta[i].key) + 1;
        op->meta[i] = (imgpack__meta_entry){at, at + key, meta[i].size};
        memcpy(at, meta[i].key, key);
        memcpy(at + key, meta[i].value, meta[i].size);
        at += key + meta[i].size;
    }
    draft(t, op);
    return publish(t, err);
}

imgpack_status imgpack__store_thread_wait(imgpack__store_thread *t,
                                          imgpack__error *err) {
    imgpack_status status = IMGPACK_OK;
    pthread_mutex_lock(&t->lock);
    while (t->error.code == IMGPACK_OK &&
           t->commits_done < t->commits_published)
        pthread_cond_wait(&t->progress, &t->lock);
    if (t->error.code != IMGPACK_OK)
        status = thread_failure(t, err);
    pthread_mutex_unlock(&t->lock);
    return status;
}

void imgpack__store_thread_stop(imgpack__store_thread *t) {
    if (!t->running)
        return;
    while (t->draft_head) {
        imgpack__store_op *op = t->draft_head;
        t->draft_head = op->next;
        free_op(op);
    }
    t->draft_tail = NULL;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_signal(&t->work);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->progress);
    pthread_cond_destroy(&t->work);
    pthread_mutex_destroy(&t->lock);
    t->running = 0;
}
