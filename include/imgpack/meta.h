/*
 * The names of a store's metadata keys, the one place they are spelled:
 * the library writes and reads them through these, and a program asks
 * imgpack_reader_meta for them by these (included by <imgpack/reader.h>).
 * docs/FORMAT.md, "Metadata", says what each value holds. The values are
 * bytes: decimal ASCII for numbers, little-endian u32s for the tables.
 */
#ifndef IMGPACK_META_H
#define IMGPACK_META_H

#include <inttypes.h>

/* The store-wide header, written once when a pack begins. */
#define IMGPACK_META_FORMAT_VERSION "format_version"
#define IMGPACK_META_FORMAT "format" /* imgpack_format_name's text */
#define IMGPACK_META_CHANNELS "channels"
#define IMGPACK_META_WIDTH "width"
#define IMGPACK_META_HEIGHT "height"
#define IMGPACK_META_RESIZE "resize"
#define IMGPACK_META_CROP "crop"
#define IMGPACK_META_NUM_CLASSES "num_classes"
#define IMGPACK_META_SETTINGS "settings"
#define IMGPACK_META_SOURCE_DIGEST "source_digest"
#define IMGPACK_META_TOOL_VERSION "tool_version"
#define IMGPACK_META_CATALOG_DATASET_DIGEST "catalog_dataset_digest"
/* In a shard's store only: "K/N", and the source position it begins at. */
#define IMGPACK_META_SHARD "shard"
#define IMGPACK_META_SHARD_FIRST_POSITION "shard_first_position"

/* Class c's name and description: snprintf formats taking a uint32_t. The
   fixed width keeps them in id order under LMDB's byte order. The
   description is present only where a synsets file gave one. */
#define IMGPACK_META_CLASS_FORMAT "class/%08" PRIu32
#define IMGPACK_META_DESCRIPTION_FORMAT "description/%08" PRIu32

/* Progress, committed with every batch. */
#define IMGPACK_META_COUNT "count"
#define IMGPACK_META_NEXT_POSITION "next_position"
#define IMGPACK_META_CATALOG_DIGEST "catalog_digest"
#define IMGPACK_META_STATE "state"
/* The values of IMGPACK_META_STATE. */
#define IMGPACK_META_STATE_PACKING "packing"
#define IMGPACK_META_STATE_COMPLETE "complete"

/* An append's progress (imgpack_pack_options_set_append), committed with
   each of its batches while count, next_position, the tables and the
   class table still describe the content before it; equal to count and
   next_position once it finished. */
#define IMGPACK_META_APPEND_COUNT "append_count"
#define IMGPACK_META_APPEND_NEXT_POSITION "append_next_position"
/* IMGPACK_META_STATE_APPENDING from an append's first commit, before any
   of its records, to its last, which makes it IMGPACK_META_STATE_COMPLETE:
   "appending" in a store is an append that stopped, or one running. */
#define IMGPACK_META_APPEND_STATE "append_state"
#define IMGPACK_META_STATE_APPENDING "appending"

/* Once complete: `count` little-endian u32s, one per record. */
#define IMGPACK_META_LABELS "labels"
#define IMGPACK_META_PAYLOAD_CRCS "payload_crcs"

#endif
