"""Sharded datasets made from a packed store with python-lmdb
(docs/FORMAT.md, "Sharded datasets"), so reader tests need not wait for
`imgpack pack --shard`: shard k gets a contiguous slice of the records,
renumbered from 0, with the store's metadata, its own count, labels and
payload_crcs, and `shard` = "k/n" (metadata checksums made anew when the
store has them)."""
import struct

import lmdb

from storefile import with_checksums


def slices(count, n):
    """The packer's split: shard k holds records [k*count//n,
    (k+1)*count//n)."""
    return [(k * count // n, (k + 1) * count // n) for k in range(n)]


def split(store, out, n, bounds=None, meta=None, complete=None):
    """Writes out/shard-K-of-N for K < n from the complete store `store`.

    bounds: (begin, end) record ranges per shard, default slices(count, n).
    meta: {k: {key: bytes or None}} overrides (None deletes) for shard k.
    complete: shard indices whose state is "complete" (default all); the
    others say "packing" and have no labels. Returns `out`."""
    src = lmdb.open(str(store), readonly=True, lock=False, max_dbs=2)
    records = src.open_db(b"records", create=False)
    meta_db = src.open_db(b"meta", create=False)
    with src.begin() as txn:
        base = {bytes(k): bytes(v) for k, v in txn.cursor(db=meta_db)}
        count = int(base[b"count"])
        labels = struct.unpack("<%dI" % count, base[b"labels"])
        bounds = bounds or slices(count, n)
        out.mkdir(parents=True, exist_ok=True)
        for k, (begin, end) in enumerate(bounds):
            path = out / ("shard-%d-of-%d" % (k, n))
            path.mkdir()
            env = lmdb.open(str(path), max_dbs=2, map_size=1 << 30)
            dst_records = env.open_db(b"records")
            dst_meta = env.open_db(b"meta")
            done = complete is None or k in complete
            entries = dict(base)
            entries.update({
                b"count": str(end - begin).encode(),
                b"labels": struct.pack("<%dI" % (end - begin),
                                       *labels[begin:end]),
                b"shard": ("%d/%d" % (k, n)).encode(),
                b"shard_first_position": str(begin).encode(),
                b"state": b"complete" if done else b"packing"})
            if b"payload_crcs" in base:
                entries[b"payload_crcs"] = \
                    base[b"payload_crcs"][4 * begin:4 * end]
            if not done:
                del entries[b"labels"]
                entries.pop(b"payload_crcs", None)
            for key, value in (meta or {}).get(k, {}).items():
                entries.pop(key.encode(), None)
                if value is not None:
                    entries[key.encode()] = value
            if b"crc/format_version" in base:
                entries = with_checksums(entries)
            with env.begin(write=True) as w:
                for key, value in entries.items():
                    w.put(key, value, db=dst_meta)
                for i in range(begin, end):
                    value = txn.get(struct.pack(">Q", i), db=records)
                    w.put(struct.pack(">Q", i - begin), bytes(value),
                          db=dst_records, append=True)
            env.close()
    src.close()
    return out
