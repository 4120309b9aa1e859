"""Sharding costs nothing beyond the cores it uses (docs/BENCHMARKS.md).

Packs the same source as 1 shard (--jobs 2), 2 shards (--jobs 1 each) and 4
shards (--jobs 1 each, two per core) with all shard processes started at
once, ROUNDS times interleaved, plus imgpack combine; prints median wall
seconds and images/s.

    /usr/bin/python3 bench/shard_bench.py BUILD_DIR SRC_DIR [ROUNDS]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def pack_shards(imgpack, src, out, shards):
    shutil.rmtree(out, ignore_errors=True)
    jobs = "2" if shards == 1 else "1"
    start = time.perf_counter()
    procs = [subprocess.Popen([imgpack, "pack", "--quiet", "--jobs", jobs,
                               "--shard", f"{k}/{shards}", src, out])
             for k in range(shards)]
    assert all(p.wait() == 0 for p in procs)
    packed = time.perf_counter() - start
    if shards > 1:
        subprocess.run([imgpack, "combine", out], check=True)
    return packed, time.perf_counter() - start


def main(build, src, rounds=5):
    imgpack = os.path.join(build, "imgpack")
    count = sum(len(files) for _, _, files in os.walk(src))
    times = {n: [] for n in (1, 2, 4)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(int(rounds)):
            for n in times:
                times[n].append(pack_shards(imgpack, src,
                                            os.path.join(tmp, "out"), n))
    print(f"{count} images, {rounds} rounds, median wall seconds:")
    for n, runs in times.items():
        packed = statistics.median(t for t, _ in runs)
        total = statistics.median(t for _, t in runs)
        print(f"  {n} shard(s): pack {packed:.2f} s ({count / packed:.0f}"
              f" images/s), with combine {total:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
