"""Stores written here with python-lmdb (docs/FORMAT.md) whose every pixel
is known: record i holds pixel(i, y, x, c), and its first pixel spells i,
so a test can tell which record an image came from."""
import struct
import zlib

import lmdb
import numpy as np


def pixels(index, height, width):
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3),
                          indexing="ij")
    image = ((index * 37 + y * 7 + x * 3 + c * 101) % 256).astype(np.uint8)
    image[0, 0] = (index & 255, index >> 8 & 255, 0)
    return image


def index_of(image):
    """The record an HWC image came from (its first pixel)."""
    return int(image[0, 0, 0]) | int(image[0, 0, 1]) << 8


def value(index, label, image):
    payload = image.tobytes()
    height, width, channels = image.shape
    header = struct.pack("<4sHBBIIIII", b"IPKR", 1, 0, channels, width,
                         height, label, len(payload), zlib.crc32(payload))
    return header + struct.pack("<I", zlib.crc32(header)) + payload


def write(path, count, height=12, width=10, classes=("a", "b", "c"),
          complete=True, bad=()):
    """Writes a raw store of `count` records; label i % len(classes).
    Records in `bad` get a damaged header."""
    env = lmdb.open(str(path), max_dbs=2, map_size=1 << 28)
    records = env.open_db(b"records")
    meta = env.open_db(b"meta")
    labels = [i % len(classes) for i in range(count)]
    with env.begin(write=True) as txn:
        entries = {"format_version": "1", "format": "raw", "channels": "3",
                   "width": str(width), "height": str(height), "resize": "0",
                   "crop": "0", "num_classes": str(len(classes)),
                   "count": str(count),
                   "state": "complete" if complete else "packing"}
        for c, name in enumerate(classes):
            entries["class/%08d" % c] = name
        for key, text in entries.items():
            txn.put(key.encode(), text.encode(), db=meta)
        if complete:
            txn.put(b"labels", struct.pack("<%dI" % count, *labels), db=meta)
        for i in range(count):
            v = bytearray(value(i, labels[i], pixels(i, height, width)))
            if i in bad:
                v[9] ^= 0xFF
            txn.put(struct.pack(">Q", i), bytes(v), db=records)
    env.close()
    return path
