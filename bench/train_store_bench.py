"""Which train store to pack (README, "Training with PyTorch"): for each of
four `--crop 0` stores of the shared sample (raw and jpeg q90, short side
256 and 384), the bytes per record, the same scaled to ImageNet's
1,281,167 training images, and RandomResizedCrop(224) + flip float32 NCHW
batches per CPU second of one thread (`Loader(..., threads=1)`), the median
of ROUNDS epochs (process CPU time, so other work on the machine weighs
little).

    /usr/bin/python3 bench/train_store_bench.py [BUILD_DIR [SAMPLE_DIR [ROUNDS]]]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SAMPLE = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/imagenet-sample"
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 7
os.environ.setdefault("IMGPACK_LIBRARY", os.path.join(BUILD, "libimgpack.so"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import imgpack  # noqa: E402

IMAGENET_TRAIN = 1281167
STORES = [
    ("--crop 0, raw", ["--crop", "0"]),
    ("--crop 0 --format jpeg --quality 90",
     ["--crop", "0", "--format", "jpeg", "--quality", "90"]),
    ("--crop 0 --resize 384 --format jpeg --quality 90",
     ["--crop", "0", "--resize", "384", "--format", "jpeg", "--quality", "90"]),
    ("--crop 0 --resize 384, raw", ["--crop", "0", "--resize", "384"]),
]


def images_per_cpu_second(store):
    loader = imgpack.Loader(store, 64, crop=224, crop_mode="random_resized",
                            flip=True, threads=1)
    rates = []
    for epoch in range(ROUNDS + 1):
        loader.set_epoch(epoch)
        start = time.process_time()
        for images, labels in loader:
            pass
        if epoch:  # the first epoch also runs the first-read checks
            rates.append(len(loader.indices()) /
                         (time.process_time() - start))
    loader.close()
    return statistics.median(rates)


def main():
    print("%-50s %10s %14s %18s" % ("train store", "per image",
                                    "ImageNet train", "images per CPU s"))
    with tempfile.TemporaryDirectory() as work:
        for k, (name, options) in enumerate(STORES):
            store = os.path.join(work, "store%d" % k)
            subprocess.run([os.path.join(BUILD, "imgpack"), "pack", "--quiet",
                            *options, SAMPLE, store], check=True)
            with imgpack.Reader(store) as r:
                count = len(r)
            per_image = os.path.getsize(os.path.join(store, "data.mdb")) / count
            print("%-50s %7.0f KB %11.0f GB %18.0f" % (
                name, per_image / 1e3, per_image * IMAGENET_TRAIN / 1e9,
                images_per_cpu_second(store)))


if __name__ == "__main__":
    main()
