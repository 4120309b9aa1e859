/*
 * The listing of an append: what `imgpack pack --append` adds to a
 * complete store (pack.c opens the writer with imgpack__writer_append).
 */
#ifndef IMGPACK_SRC_APPEND_H
#define IMGPACK_SRC_APPEND_H

#include "error.h"
#include "sources.h"

/*
 * Turns the listing `src` into an append to the complete store in
 * `store_dir`: drops the items whose path one of the store's records has,
 * and installs the store's class table with the source's other classes
 * after it (new ids, in the source's class order), mapping the items to
 * it by class name. IMGPACK_ERR_INCOMPLETE and the like, naming the
 * store, when it cannot be read.
 */
imgpack_status imgpack__append_listing(imgpack__source *src,
                                       const char *store_dir,
                                       imgpack__error *err);

#endif
