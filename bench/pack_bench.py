"""Packing throughput, side by side in one run (docs/BENCHMARKS.md).

Interleaves, for ROUNDS rounds over the same source (files warm in the page
cache after the first round):
  decode   bench_decode: bare libjpeg-turbo decode loop, files in memory
  jobs1    imgpack pack --jobs 1
  jobs2    imgpack pack --jobs 2
  pillow   pillow_pack.py: Pillow + python-lmdb, same preprocessing
and prints the median images/s of each with the ratios the targets use.
Each pack is timed as a user would time the command: process start,
listing, the final syncs and exit included.

With COPIES > 1 the source is a tree holding every image COPIES times
(symlinks, class by class), so that a pack's fixed cost weighs less and
the steady-state rates show.

    /usr/bin/python3 bench/pack_bench.py BUILD_DIR SRC_DIR [ROUNDS [COPIES]]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def images(src):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(src)
                  for f in files if f.lower().endswith((".jpg", ".jpeg")))


def copied_tree(src, dst, copies):
    """ImageFolder tree `dst` with every image of `src` `copies` times."""
    for cls in sorted(os.listdir(src)):
        os.makedirs(os.path.join(dst, cls))
        for name in sorted(os.listdir(os.path.join(src, cls))):
            for k in range(copies):
                os.symlink(os.path.abspath(os.path.join(src, cls, name)),
                           os.path.join(dst, cls, f"{k}_{name}"))
    return dst


def timed_pack(imgpack, src, out, jobs, count):
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([imgpack, "pack", "--quiet", "--jobs", str(jobs), src, out],
                   check=True)
    return count / (time.perf_counter() - start)


def measure(build, src, rounds=7, copies=1):
    """Images/s of each case, one value per round, and the image count."""
    imgpack = os.path.join(build, "imgpack")
    decoder = os.path.join(build, "bench_decode")
    rates = {"decode": [], "jobs1": [], "jobs2": [], "pillow": []}
    with tempfile.TemporaryDirectory() as tmp:
        if int(copies) > 1:
            src = copied_tree(src, os.path.join(tmp, "src"), int(copies))
        files = images(src)
        out = os.path.join(tmp, "store")
        for _ in range(int(rounds)):
            rates["decode"].append(float(subprocess.run(
                [decoder, "3", *files], check=True, capture_output=True,
                text=True).stdout))
            rates["jobs1"].append(timed_pack(imgpack, src, out, 1, len(files)))
            rates["jobs2"].append(timed_pack(imgpack, src, out, 2, len(files)))
            shutil.rmtree(out, ignore_errors=True)
            rates["pillow"].append(float(subprocess.run(
                [sys.executable, os.path.join(HERE, "pillow_pack.py"), src,
                 out], check=True, capture_output=True, text=True).stdout))
    return rates, len(files)


def report(rates, count, rounds):
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{count} images, {rounds} rounds, median images/s (min-max):")
    for name, values in rates.items():
        print(f"  {name:7s} {median[name]:7.1f}  ({min(values):.1f}-"
              f"{max(values):.1f})")
    print(f"  jobs1 / decode = {median['jobs1'] / median['decode']:.2f}"
          f"  (floor 0.95)")
    print(f"  jobs1 / pillow = {median['jobs1'] / median['pillow']:.2f}")
    print(f"  jobs2 / jobs1  = {median['jobs2'] / median['jobs1']:.2f}"
          f"  (floor 1.9)")
    return median


def main(build, src, rounds=7, copies=1):
    rates, count = measure(build, src, rounds, copies)
    report(rates, count, rounds)


if __name__ == "__main__":
    main(*sys.argv[1:])
