/*
 * What reader_open.c shares with reader.c: the reader's state, and the
 * functions that open its LMDB environments and load its metadata.
 * reader_open.c finds the store or shards, opens and checks them; reader.c
 * runs the per-thread reads on top. Nothing else includes this header.
 *
 * A reader holds one or more shards. A single store is one shard whose
 * directory is the reader's; a sharded dataset (docs/FORMAT.md, "Sharded
 * datasets") has N, in global index order. Shard k holds the global
 * indices first[k] .. first[k+1]-1 as its local records 0, 1, ...
 */
#ifndef IMGPACK_SRC_READER_OPEN_H
#define IMGPACK_SRC_READER_OPEN_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "decode.h"
#include "meta_sum.h"
#include "reader_internal.h"

/* One LMDB environment of the dataset. */
typedef struct imgpack__shard {
    char *dir;  /* the store's directory: the reader's, or shard-K-of-N */
    int nolock; /* opened with MDB_NOLOCK (unwritable directory) */
    MDB_env *env;
    MDB_dbi records;
    MDB_dbi meta;
    uint64_t count;             /* records, as of open or the last refresh */
    int complete;               /* its meta state is "complete" */
    int meta_sums;              /* its metadata has checksums (meta_sum.h) */
    imgpack__map_bounds bounds; /* where its data file is mapped */
} imgpack__shard;

/* A thread's read transaction on one shard. */
typedef struct imgpack__slot_txn {
    MDB_txn *txn;   /* NULL until first use, or after a failed renew */
    int live;       /* txn is current: its views are valid */
    uint64_t stamp; /* the slot's stamp when txn was renewed */
} imgpack__slot_txn;

struct imgpack__read_slot {
    imgpack__read_slot *next;
    pthread_t thread;
    pthread_mutex_t busy; /* held by the thread during each call */
    /* Bumped when every transaction must be renewed before its next use;
       a transaction renewed under an older stamp is stale. */
    uint64_t stamp;
    uint64_t snapshot;         /* the reader's `snapshot` the stamp last saw */
    imgpack__decoder *decoder; /* made by this thread on its first decode */
    imgpack__error err;
    imgpack__slot_txn txns[]; /* one per shard, made on first use */
};

struct imgpack_reader {
    imgpack__error err; /* open failures, and callers without a slot */
    char *dir;
    uint32_t flags;
    uint32_t num_shards;
    imgpack__shard *shards;
    /* num_shards + 1 entries: the global index of each shard's record 0,
       then the count. */
    uint64_t *first;
    /* Lock order: lock, then the slots' busy mutexes in list order. */
    pthread_mutex_t lock; /* slots, err */
    imgpack__read_slot *slots;
    uint64_t id; /* unique in the process per environment: the cache key */
    atomic_uint generation; /* fork generation the environments belong to */

    uint64_t count; /* all shards' records */
    uint32_t num_classes;
    char **class_names;
    int32_t format;
    uint32_t width, height, channels, resize, crop;
    int complete;     /* every shard is */
    uint32_t *labels; /* all labels of a complete dataset; else NULL */
    /* Every record's payload CRC, from the payload_crcs metadata, in a
       complete dataset whose stores have it; else NULL. */
    uint32_t *payload_crcs;
    /* Bit i: record i passed its checks (reader.c, "Checks"). Only for
       complete datasets; shared memory, shared with forked children. */
    _Atomic uint64_t *verified;
    size_t verified_bytes;
    /* Bytes one read-ahead may request (imgpack_reader_prefetch). */
    _Atomic uint64_t prefetch_limit;
    /* Read-ahead rounds to go, found cached, before reads stop re-asking
       for their pages (readahead.c, REARM_ROUNDS). */
    atomic_int uncached;
    /* Bumped by refresh: a transaction renewed before it may predate the
       count, so it is renewed again even in a complete dataset. */
    uint64_t snapshot;
};

/* The slow path of imgpack__reader_txn (reader_session.c): renews the
   transaction on shard k, remapping the shard if a writer outgrew our map.
   The calling thread holds its busy mutex on entry and on return, but not
   during a remap. Errors are set in the slot. */
imgpack_status imgpack__reader_renew_txn(imgpack_reader *r,
                                         imgpack__read_slot *s, uint32_t k);

/* The slot's read transaction on shard k, current for this call, or NULL
   with the reason in the slot. Inline: it is on every get's path. */
static inline MDB_txn *imgpack__reader_txn(imgpack_reader *r,
                                           imgpack__read_slot *s, uint32_t k) {
    imgpack__slot_txn *t = &s->txns[k];
    /* Expected: in a complete dataset the transaction stays current, and
       laying that path out straight is worth a few percent of a get. */
    if (__builtin_expect(t->live && t->stamp == s->stamp, 1))
        return t->txn;
    return imgpack__reader_renew_txn(r, s, k) == IMGPACK_OK ? t->txn : NULL;
}

/* A process-unique reader id, for the slot cache. */
uint64_t imgpack__reader_new_id(void);

/* Makes r->shards from r->dir: the one store there (data.mdb), or its
   shard-K-of-N subdirectories, all N of one N (reader_shards.c). */
imgpack_status imgpack__reader_find_layout(imgpack_reader *r);

/* Opens shard `sh`'s environment (sh->dir; sh->env must be NULL) read-only
   with a map of `map_size` bytes, and its two databases. */
imgpack_status imgpack__shard_open(imgpack__shard *sh, size_t map_size,
                                   imgpack__error *err);

/* Opens every shard's environment and databases (r->shards[k].env must be
   NULL). Errors go to r->err and name the shard. */
imgpack_status imgpack__reader_open_envs(imgpack_reader *r);

/*
 * Reads every shard's count and state (and, once all are complete, their
 * labels) through txns[k], one current read transaction per shard, and
 * installs them: counts, first[], complete, labels, verified. On failure
 * nothing changes and the reason goes to `err`.
 */
imgpack_status imgpack__reader_load_progress(imgpack_reader *r,
                                             MDB_txn *const *txns,
                                             imgpack__error *err);

/* Closes the environments (only when `same_process`: a forked child must
   not close its parent's) and frees everything but the slots, which the
   caller dropped. */
void imgpack__reader_free(imgpack_reader *r, int same_process);

#endif
