/*
 * Metadata checksums (the format is in meta_sum.h) and the bound every
 * value LMDB hands the reader is held to.
 *
 * LMDB keeps no checksums of its own pages, so one damaged byte in a leaf
 * can change a value, its size, or where LMDB thinks it lies. Values are
 * therefore checked in two steps before anything else reads them: the
 * pointer and size must fall inside data.mdb (a size or page number from
 * a damaged node can point far past the file, where a read is SIGBUS),
 * then the CRC-32 must match. Both are cheap next to the mdb_get: the
 * values are a few bytes, except `labels` and `payload_crcs`, 4 bytes per
 * record, read once at open.
 */
#include "meta_sum.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "crc32.h"

static int within(const imgpack__map_bounds *b, const void *data, size_t size) {
    uintptr_t base = atomic_load_explicit(&b->base, memory_order_relaxed);
    uint64_t file = atomic_load_explicit(&b->size, memory_order_relaxed);
    uintptr_t at = (uintptr_t)data;
    return at >= base && at - base <= file && size <= file - (at - base);
}

/*
 * The start of the mapping of the file (inode `inode`, from offset 0) that
 * holds `data`, from /proc/self/maps; 0 if none does. LMDB does not say
 * where it mapped the file (mdb_env_info's me_mapaddr is only the
 * MDB_FIXEDMAP address), and a process may map one file several times (two
 * readers of a store; a forked child keeps its parent's map).
 */
static uintptr_t mapping_start(ino_t inode, const void *data) {
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    uintptr_t found = 0, at = (uintptr_t)data;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long start, end, offset, ino;
        char perms[8], dev[16];
        if (sscanf(line, "%llx-%llx %7s %llx %15s %llu", &start, &end, perms,
                   &offset, dev, &ino) == 6 &&
            ino == (unsigned long long)inode && offset == 0 && at >= start &&
            at < end)
            found = (uintptr_t)start;
        /* A line longer than the buffer (a long path) goes on in the next
           read; its rest never parses as a mapping. */
    }
    fclose(f);
    return found;
}

int imgpack__map_contains(MDB_env *env, imgpack__map_bounds *b,
                          const void *data, size_t size) {
    struct stat st;
    uintptr_t base;
    int fd;
    if (within(b, data, size))
        return 1;
    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0 ||
        (base = mapping_start(st.st_ino, data)) == 0)
        return 0;
    atomic_store_explicit(&b->base, base, memory_order_relaxed);
    atomic_store_explicit(&b->size, (uint64_t)st.st_size, memory_order_relaxed);
    return within(b, data, size);
}

static uint32_t meta_crc(const char *key, const void *value, size_t size) {
    /* The key's NUL terminator separates it from the value. */
    uLong head = crc32(0, (const Bytef *)key, (uInt)strlen(key) + 1);
    return (uint32_t)crc32_combine(head, imgpack__crc32(value, size),
                                   (z_off_t)size);
}

void imgpack__meta_sum_text(const char *key, const void *value, size_t size,
                            char out[IMGPACK__META_SUM_DIGITS]) {
    static const char digits[] = "0123456789abcdef";
    uint32_t crc = meta_crc(key, value, size);
    for (int i = 0; i < IMGPACK__META_SUM_DIGITS; i++)
        out[i] = digits[(crc >> (28 - 4 * i)) & 15];
}

/* "crc/" and `key` into `out`; 0 if the key is too long. */
static int sum_key(const char *key, char out[IMGPACK__META_KEY_MAX + 8]) {
    size_t n = strlen(key);
    if (n > IMGPACK__META_KEY_MAX)
        return 0;
    memcpy(out, IMGPACK__META_SUM_PREFIX, 4);
    memcpy(out + 4, key, n + 1);
    return 1;
}

int imgpack__meta_sum_put(MDB_txn *txn, MDB_dbi meta, const char *key,
                          const void *value, size_t size) {
    char name[IMGPACK__META_KEY_MAX + 8], text[IMGPACK__META_SUM_DIGITS];
    if (!sum_key(key, name))
        return EINVAL;
    imgpack__meta_sum_text(key, value, size, text);
    MDB_val k = {strlen(name), name}, v = {sizeof text, text};
    return mdb_put(txn, meta, &k, &v, 0);
}

int imgpack__meta_sum_present(MDB_txn *txn, MDB_dbi meta, int *present) {
    MDB_val k = {strlen(IMGPACK__META_SUM_MARKER), IMGPACK__META_SUM_MARKER};
    MDB_val v;
    MDB_cursor *cursor;
    int rc = mdb_get(txn, meta, &k, &v);
    *present = rc == 0;
    if (rc != MDB_NOTFOUND)
        return rc;
    /* The first key at or after the prefix: any "crc/" key at all. */
    if ((rc = mdb_cursor_open(txn, meta, &cursor)) != 0)
        return rc;
    k = (MDB_val){4, IMGPACK__META_SUM_PREFIX};
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cursor);
    if (rc == 0)
        *present = k.mv_size > 4 &&
                   memcmp(k.mv_data, IMGPACK__META_SUM_PREFIX, 4) == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int imgpack__meta_sum_get(MDB_txn *txn, MDB_dbi meta, imgpack__map_bounds *b,
                          int checked, const char *key, MDB_val *value) {
    char name[IMGPACK__META_KEY_MAX + 8], want[IMGPACK__META_SUM_DIGITS];
    MDB_val k = {strlen(key), (void *)key}, sum;
    MDB_env *env = mdb_txn_env(txn);
    int rc = mdb_get(txn, meta, &k, value);
    if (rc != 0)
        return rc;
    if (!imgpack__map_contains(env, b, value->mv_data, value->mv_size))
        return IMGPACK__META_OUTSIDE;
    if (!checked)
        return 0;
    if (!sum_key(key, name))
        return IMGPACK__META_SUM_MISMATCH;
    k = (MDB_val){strlen(name), name};
    if ((rc = mdb_get(txn, meta, &k, &sum)) != 0)
        return rc == MDB_NOTFOUND ? IMGPACK__META_SUM_MISMATCH : rc;
    if (!imgpack__map_contains(env, b, sum.mv_data, sum.mv_size))
        return IMGPACK__META_OUTSIDE;
    imgpack__meta_sum_text(key, value->mv_data, value->mv_size, want);
    return sum.mv_size == sizeof want &&
                   memcmp(sum.mv_data, want, sizeof want) == 0
               ? 0
               : IMGPACK__META_SUM_MISMATCH;
}

const char *imgpack__meta_sum_strerror(int rc) {
    if (rc == IMGPACK__META_SUM_MISMATCH)
        return "fails its checksum";
    if (rc == IMGPACK__META_OUTSIDE)
        return "lies outside data.mdb (damaged LMDB page)";
    return mdb_strerror(rc);
}
