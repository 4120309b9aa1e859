-- The imgpack catalog: which source file became which record, in which
-- class, and why any file was rejected. This file is the single source of
-- truth for the schema; it is compiled into the library and run once when a
-- store is created. Open it with `sqlite3 OUT_DIR/catalog.db`.
--
-- The LMDB store is authoritative for what was packed: the writer commits
-- each batch here first and then in LMDB, so after a crash the catalog may
-- hold rows past the store's count, never fewer (docs/FORMAT.md).

PRAGMA user_version = 1;

-- How the store was made: count, format, resize, crop, quality,
-- tool_version, command, created, source, state ('packing' or 'complete'),
-- resumes (if resumed), shard and shards (in a shard's catalog), shards and
-- combined (in the catalog `imgpack combine` writes over all shards).
-- After `imgpack stats`: mean and std (JSON arrays of the per-channel
-- values in 0..1 units, for Normalize), stats_records (records they cover)
-- and stats_seed (the sample's seed as text; NULL when every record).
CREATE TABLE dataset (
    key   TEXT PRIMARY KEY,
    value
);

-- One row per class: ids in byte order of the class directory names.
CREATE TABLE classes (
    class_id    INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    num_images  INTEGER NOT NULL DEFAULT 0
);

-- One row per packed record; idx is the record's key in the LMDB store (in
-- a combined catalog: its index in the whole dataset).
CREATE TABLE images (
    idx          INTEGER PRIMARY KEY,
    class_id     INTEGER NOT NULL REFERENCES classes (class_id),
    path         TEXT NOT NULL,  -- relative to the source directory
    src_width    INTEGER,
    src_height   INTEGER,
    src_bytes    INTEGER,
    stored_bytes INTEGER,        -- size of the LMDB value, header included
    sha256       TEXT,           -- of the source file, lowercase hex
    shard        INTEGER         -- the shard holding it; NULL if unsharded
);
CREATE INDEX images_by_class ON images (class_id);

-- Files that were listed as images but could not be packed.
CREATE TABLE rejects (
    position INTEGER PRIMARY KEY, -- place in the source listing
    path     TEXT NOT NULL,
    class_id INTEGER REFERENCES classes (class_id),
    reason   TEXT NOT NULL,
    shard    INTEGER              -- the shard that met it; NULL if unsharded
);

-- Inverse-frequency class weights for a class-weighted cross-entropy:
-- weight = total / (num_classes * num_images); NULL for an empty class.
CREATE VIEW class_weights AS
SELECT c.class_id,
       c.name,
       c.num_images,
       CASE WHEN c.num_images > 0
            THEN CAST(t.total AS REAL) / (t.num_classes * c.num_images)
       END AS weight
FROM classes AS c,
     (SELECT SUM(num_images) AS total, COUNT(*) AS num_classes
      FROM classes) AS t;
