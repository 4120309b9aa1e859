/*
 * Walking a tar archive's image members, classes attached: members
 * "class/.../file" of the archive, and the members of each inner
 * "<class>.tar" (ImageNet's train layout). One walker serves both the
 * listing (which only looks at headers) and the streaming of compressed
 * archives (which reads each member's data as it passes).
 */
#ifndef IMGPACK_SRC_ARCHIVE_WALK_H
#define IMGPACK_SRC_ARCHIVE_WALK_H

#include <stdint.h>

#include "error.h"
#include "libarchive.h"

/* One image member, valid during the visit only. */
typedef struct imgpack__archive_member {
    const char *class_name;
    const char *shown;  /* the catalog's path: "cls/x.jpg", "cls.tar/x.jpg" */
    const char *within; /* its path inside the class */
    uint64_t sequence;  /* 0, 1, ... in the order members pass */
    uint64_t size;
    /* Where its data starts in the file (seekable walks only). */
    uint64_t offset;
    /* The archive positioned at its data (streaming walks): read it with
       la->archive_read_data during the visit, or leave it to be skipped. */
    struct archive *data;
    const imgpack__libarchive *la;
} imgpack__archive_member;

/* Called for each image member; return nonzero to stop the walk. */
typedef int (*imgpack__member_fn)(void *user, const imgpack__archive_member *m);

typedef struct imgpack__archive_walk {
    const char *path;
    int fd;       /* the archive, for seekable walks */
    int seekable; /* an uncompressed tar: seek over data, offsets exact */
    imgpack__member_fn visit;
    void *user;
    uint64_t sequence; /* members seen so far */
    uint64_t skipped;  /* members that are not images */
    char *damage;      /* malloc'd: where and why reading stopped, or NULL */
    int stopped;       /* the visitor asked to stop */
    const imgpack__libarchive *la; /* set by imgpack__archive_walk_run */
} imgpack__archive_walk;

/*
 * Walks the archive. Damage (a broken header, data cut short) ends the walk
 * with w->damage set and IMGPACK_OK: what came before stays valid. Returns
 * IMGPACK_ERR_NOMEM, IMGPACK_ERR_IO or IMGPACK_ERR_UNSUPPORTED (no
 * libarchive) with `err` set otherwise.
 */
imgpack_status imgpack__archive_walk_run(imgpack__archive_walk *w,
                                         imgpack__error *err);

#endif
