"""Two builds' `imgpack pack`, side by side in one run: what a change costs
the packer (docs/BENCHMARKS.md).

Interleaves, for ROUNDS rounds over the same source (files warm in the page
cache after the first round), `imgpack pack --jobs JOBS` of build A and of
build B, and prints for each the median wall-clock images/s, as a user
times the command, and the median CPU time (user + system, all threads) per
image, which a busy machine disturbs less; then the medians of the
per-round ratios B/A.

    /usr/bin/python3 bench/pack_ab.py BUILD_A BUILD_B SRC_DIR [ROUNDS [JOBS]]
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pack_bench import images


def timed_pack(imgpack, src, out, jobs, count):
    """(images/s, CPU ms per image) of one pack."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([imgpack, "pack", "--quiet", "--jobs", str(jobs), src, out],
                   check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                                before.ru_stime)
    return count / wall, cpu * 1000 / count


def spread(values, digits):
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main(build_a, build_b, src, rounds=9, jobs=1):
    count = len(images(src))
    runs = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        for r in range(int(rounds) + 1):
            # Round 0 warms the page cache and is not counted; the order
            # alternates so neither build always runs first.
            order = ("A", build_a), ("B", build_b)
            for name, build in order if r % 2 else order[::-1]:
                run = timed_pack(os.path.join(build, "imgpack"), src, out,
                                 int(jobs), count)
                if r:
                    runs[name].append(run)
    print(f"{count} images, {rounds} rounds, --jobs {jobs}; median (min-max)")
    for name, build in (("A", build_a), ("B", build_b)):
        print(f"{name} {build}: {spread([w for w, _ in runs[name]], 1)} "
              f"images/s, {spread([c for _, c in runs[name]], 3)} CPU ms "
              f"per image")
    pairs = list(zip(runs["A"], runs["B"]))
    print(f"B/A images/s {spread([b[0] / a[0] for a, b in pairs], 3)}, "
          f"CPU per image {spread([b[1] / a[1] for a, b in pairs], 3)}")


if __name__ == "__main__":
    if not 4 <= len(sys.argv) <= 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
