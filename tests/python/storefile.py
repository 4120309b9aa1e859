"""Reading imgpack stores with python-lmdb alone, as docs/FORMAT.md says.

The tests use this rather than the imgpack binding on purpose: it checks
that the documented format is enough to read a store.
"""
import struct
import zlib

import lmdb
import numpy as np

HEADER = struct.Struct("<4sHBBIIIIII")
FORMATS = {0: "raw", 1: "jpeg", 2: "webp", 3: "webp-lossless"}


def meta_checksum(key, value):
    """The value of meta key b"crc/" + key for `value` (docs/FORMAT.md,
    "Metadata checksums"): CRC-32 of the key, a NUL, then the value, as 8
    lowercase hex digits."""
    return b"%08x" % zlib.crc32(value, zlib.crc32(key + b"\0"))


def with_checksums(entries):
    """Meta entries {key: value} with their b"crc/" keys made anew, as the
    writer stores them."""
    plain = {k: v for k, v in entries.items() if not k.startswith(b"crc/")}
    out = dict(plain)
    out.update({b"crc/" + k: meta_checksum(k, v) for k, v in plain.items()})
    return out


class Record:
    def __init__(self, value):
        (magic, version, fmt, channels, width, height, label, size, crc,
         header_crc) = HEADER.unpack_from(value)
        assert magic == b"IPKR" and version == 1
        assert header_crc == zlib.crc32(value[:28])
        self.payload = bytes(value[HEADER.size:])
        assert len(self.payload) == size
        assert zlib.crc32(self.payload) == crc
        self.format = FORMATS[fmt]
        self.channels, self.width, self.height = channels, width, height
        self.label = label

    def pixels(self):
        """The record as a uint8 HWC array (compressed payloads decoded)."""
        if self.format == "raw":
            return np.frombuffer(self.payload, np.uint8).reshape(
                self.height, self.width, self.channels)
        import io
        from PIL import Image
        return np.asarray(Image.open(io.BytesIO(self.payload)).convert("RGB"))


class Store:
    def __init__(self, path):
        self.env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=2)
        self.records = self.env.open_db(b"records", create=False)
        self.meta_db = self.env.open_db(b"meta", create=False)

    def meta(self, key):
        with self.env.begin() as txn:
            value = txn.get(key.encode(), db=self.meta_db)
        return None if value is None else bytes(value)

    def __len__(self):
        return int(self.meta("count"))

    def record(self, index):
        with self.env.begin() as txn:
            value = txn.get(struct.pack(">Q", index), db=self.records)
        assert value is not None, f"no record {index}"
        return Record(value)

    def values(self):
        """Every (key, value) of the records database, as bytes."""
        with self.env.begin() as txn:
            return [(bytes(k), bytes(v))
                    for k, v in txn.cursor(db=self.records)]

    def close(self):
        self.env.close()
