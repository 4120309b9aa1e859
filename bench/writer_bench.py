"""The writer's benchmarks, side by side in one run (docs/BENCHMARKS.md,
"The writer"); about three minutes on a 2-core machine.

  1. Fashion-MNIST train (60,000 digits of 28x28, Debian's
     dataset-fashion-mnist, installed with apt-get if missing) packed by
     `imgpack pack` with the default jobs: wall time against the CPU time
     (user + sys) of the command, ROUNDS rounds; with BASE_BUILD, that
     build's imgpack too, interleaved.
  2. bench_store: the writer alone fed precomputed records of 816, 150,560
     and 602,144 bytes, the store API alone, and the memcpy, write and
     write + fdatasync floors of the machine on the same bytes.
  3. pack_bench on 1,200 images (the shared sample four times over):
     bare decode loop, --jobs 1, --jobs 2, Pillow.
  4. A projection for ImageNet-1k's 1,281,167 images on 2, 16 and 64 cores
     from the per-image costs just measured.

    /usr/bin/python3 bench/writer_bench.py BUILD_DIR [SAMPLE_DIR [BASE_BUILD]]

SAMPLE_DIR defaults to ../shared/data/imagenet-sample; the stores go to
/tmp (the disk measured).
"""
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pack_bench

FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_TRAIN = os.path.join(FASHION, "train-images-idx3-ubyte.gz")
FASHION_ROUNDS = 5
STORE_ROUNDS = 3
STORE_MB = 200
PACK_ROUNDS = 5
PACK_COPIES = 4
RECORD = 150560  # a 224x224 RGB record with its header
IMAGENET = 1281167


def install_fashion_mnist():
    if os.path.exists(FASHION_TRAIN):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q",
                    "dataset-fashion-mnist"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def timed_fashion(imgpack, out):
    """Wall and CPU seconds of one pack of Fashion-MNIST train."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([imgpack, "pack", "--quiet", "--class-names",
                    "fashion-mnist", FASHION_TRAIN, out], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                                 before.ru_stime)
    return wall, cpu


def fashion(builds):
    install_fashion_mnist()
    runs = {name: [] for name in builds}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for _ in range(FASHION_ROUNDS):
            for name, build in builds.items():
                runs[name].append(timed_fashion(
                    os.path.join(build, "imgpack"), os.path.join(tmp, name)))
    print(f"1. Fashion-MNIST train, 60,000 images, {FASHION_ROUNDS} rounds, "
          "median (min-max):")
    for name, values in runs.items():
        walls = [w for w, _ in values]
        cpus = [c for _, c in values]
        ratios = [w / c for w, c in values]
        print(f"  {name:5s} wall {statistics.median(walls):.2f} s "
              f"({min(walls):.2f}-{max(walls):.2f}), CPU "
              f"{statistics.median(cpus):.2f} s, wall/CPU "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-"
              f"{max(ratios):.2f})  (floor <= 1.3)")


def writer_alone(build):
    out = subprocess.run([os.path.join(build, "bench_store"), "/tmp",
                          str(STORE_ROUNDS), str(STORE_MB)], check=True,
                         capture_output=True, text=True).stdout
    print("2. " + out.rstrip().replace("\n", "\n   "))
    rows = {}
    for line in out.splitlines():
        numbers = line.split()
        if len(numbers) == 7 and all(re.fullmatch(r"[\d.]+", n)
                                     for n in numbers):
            rows[int(numbers[0])] = [float(n) for n in numbers[1:]]
    sync = re.search(r"write \+ fdatasync per chunk +([\d.]+)", out)
    rate, _, cpu_us = rows[RECORD][:3]
    print(f"   writer at {RECORD} bytes: {rate:.0f} records/s "
          "(floor 20,000)")
    return {"writer_wall": 1 / rate, "writer_cpu": cpu_us / 1e6,
            "disk": float(sync.group(1)) * 1e6}


def packing(build, sample):
    rates, count = pack_bench.measure(build, sample, PACK_ROUNDS, PACK_COPIES)
    print("3. ", end="")
    return pack_bench.report(rates, count, PACK_ROUNDS)


def projection(median, store):
    """Images/s with C cores: C workers and the writer share the cores, the
    one writer thread takes records no faster than it did alone, and the
    disk takes them no faster than write + fdatasync did."""
    worker = 1 / median["jobs1"]  # per image, the writer on the other core
    limits = {"writer": 1 / store["writer_wall"],
              "disk": store["disk"] / RECORD}
    print(f"4. ImageNet-1k, {IMAGENET:,} images, from: {worker * 1e3:.2f} ms "
          f"per image in a --jobs 1 pack, writer {store['writer_cpu'] * 1e3:.3f}"
          f" ms CPU and {store['writer_wall'] * 1e3:.3f} ms wall per record, "
          f"disk {store['disk'] / 1e6:.0f} MB/s")
    for cores in (2, 16, 64):
        cpu = cores / (worker + store["writer_cpu"])
        rate = min([cpu, *limits.values()])
        bound = "cores" if rate == cpu else min(limits, key=limits.get)
        print(f"  {cores:2d} cores: {rate:8.0f} images/s, "
              f"{IMAGENET / rate / 60:6.1f} min  (bound by the {bound})")


def main(build, sample=None, base=None):
    here = os.path.dirname(os.path.abspath(__file__))
    sample = sample or os.path.join(here, "..", "..", "shared", "data",
                                    "imagenet-sample")
    builds = {"this": build}
    if base:
        builds["base"] = base
    started = time.perf_counter()
    fashion(builds)
    store = writer_alone(build)
    median = packing(build, sample)
    projection(median, store)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
