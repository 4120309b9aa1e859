"""The usual alternative to imgpack pack: Pillow + python-lmdb.

Packs an ImageFolder tree into LMDB with the same preprocessing as imgpack
(torchvision-style Resize(256) + CenterCrop(224) on PIL's RGB image), one
record of raw HWC bytes per image, 256 records per transaction.

    pillow_pack.py SRC_DIR OUT_DIR     prints images/s
"""
import os
import struct
import sys
import time

import lmdb
from PIL import Image

BATCH = 256


def listing(root):
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)))
    for label, name in enumerate(classes):
        for directory, _, files in sorted(os.walk(os.path.join(root, name))):
            for f in sorted(files):
                yield os.path.join(directory, f), label


def preprocess(path, resize=256, crop=224):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if w <= h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    top = int(round((size[1] - crop) / 2.0))
    left = int(round((size[0] - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop)).tobytes()


def main(src, out):
    start = time.perf_counter()
    env = lmdb.open(out, map_size=1 << 34)
    files = list(listing(src))
    txn = env.begin(write=True)
    for index, (path, label) in enumerate(files):
        txn.put(struct.pack(">Q", index),
                struct.pack("<I", label) + preprocess(path), append=True)
        if index % BATCH == BATCH - 1:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
    print(f"{len(files) / (time.perf_counter() - start):.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
