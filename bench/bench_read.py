"""The Python baselines of the reading benchmark (bench/run_read_bench.sh):

  numpy_lmdb   (e) python-lmdb get + numpy.frombuffer + ToTensor/Normalize
               done in numpy (float32, CHW, contiguous), per record in random
               order; for jpeg stores the payload is decoded with Pillow.
  torchvision  (f) the original JPEG files read the torchvision way: open,
               convert('RGB'), Resize(256), CenterCrop(224), ToTensor,
               Normalize; one process, torch on one thread.
  loader       imgpack.Loader (the binding) float32 NCHW batches of 256 with
               1 and 2 threads, fresh output arrays per batch.

  bench_read.py numpy_lmdb STORE | torchvision IMAGE_DIR | loader STORE
                [SECONDS [REPEATS]]

Prints "name records/s" lines with the median over REPEATS runs.
"""
import io
import os
import random
import struct
import sys
import time

import numpy as np

MEAN = np.array((0.485, 0.456, 0.406), np.float32)
STD = np.array((0.229, 0.224, 0.225), np.float32)


def timed(step, seconds, repeats):
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += step()
        rates.append(done / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def numpy_lmdb(store, seconds, repeats):
    import lmdb
    from PIL import Image
    env = lmdb.open(store, readonly=True, lock=False, max_dbs=2,
                    readahead=False)
    records = env.open_db(b"records", create=False)
    meta = env.open_db(b"meta", create=False)
    txn = env.begin()
    count = int(txn.get(b"count", db=meta))
    order = list(range(count))
    random.Random(1).shuffle(order)
    keys = [struct.pack(">Q", i) for i in order]
    position = [0]

    def step():
        for _ in range(32):
            value = txn.get(keys[position[0]], db=records)
            position[0] = (position[0] + 1) % count
            fmt, channels, width, height = struct.unpack_from("<BBII",
                                                               value, 6)
            if fmt == 0:
                image = np.frombuffer(value, np.uint8, offset=32).reshape(
                    height, width, channels)
            else:
                image = np.asarray(Image.open(io.BytesIO(value[32:]))
                                   .convert("RGB"))
            x = (image.astype(np.float32) / np.float32(255) - MEAN) / STD
            x = np.ascontiguousarray(x.transpose(2, 0, 1))
        return 32
    fmt = struct.unpack_from("<B", txn.get(keys[0], db=records), 6)[0]
    name = "numpy_lmdb" if fmt == 0 else "pillow_lmdb"
    print("%-16s %12.0f records/s" % (name, timed(step, seconds, repeats)))


def torchvision_files(root, seconds, repeats):
    import torch
    from PIL import Image
    from torchvision import transforms
    torch.set_num_threads(1)
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root)
                   for f in files)
    transform = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    position = [0]

    def step():
        path = paths[position[0]]
        position[0] = (position[0] + 1) % len(paths)
        with open(path, "rb") as f:
            transform(Image.open(f).convert("RGB"))
        return 1
    print("%-16s %12.0f records/s" % ("torchvision",
                                      timed(step, seconds, repeats)))


def loader(store, seconds, repeats):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                    "python"))
    import imgpack
    for threads in (1, 2):
        batches = imgpack.Loader(store, 256, threads=threads)
        state = {"it": iter(batches), "epoch": 0}

        def step():
            try:
                images, _ = next(state["it"])
            except StopIteration:
                state["epoch"] += 1
                batches.set_epoch(state["epoch"])
                state["it"] = iter(batches)
                images, _ = next(state["it"])
            return len(images)
        print("%-16s %12.0f records/s" % ("loader_f32_t%d" % threads,
                                          timed(step, seconds, repeats)))


def main():
    kind, path = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    {"numpy_lmdb": numpy_lmdb, "torchvision": torchvision_files,
     "loader": loader}[kind](path, seconds, repeats)


if __name__ == "__main__":
    main()
