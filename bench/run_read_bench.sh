#!/bin/sh
# Reading benchmark, everything side by side on the same stores: packs the
# sample raw and jpeg, runs bench_read (C: bare LMDB, bare libjpeg-turbo,
# imgpack) and bench_read.py (Python baselines), RUNS times each, and prints
# the medians and the ratios the targets of issue 3 are stated in.
#
#   bench/run_read_bench.sh [BUILD_DIR [SAMPLE_DIR]]
#
# Environment: SECONDS_PER_CASE (default 2), REPEATS inside a run (3),
# RUNS (3), PYTHON (/usr/bin/python3).
set -eu
BUILD=${1:-build}
SAMPLE=${2:-../shared/data/imagenet-sample}
SECS=${SECONDS_PER_CASE:-2}
REPEATS=${REPEATS:-3}
RUNS=${RUNS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export IMGPACK_LIBRARY="$BUILD/libimgpack.so"

"$BUILD/imgpack" pack --quiet "$SAMPLE" "$WORK/raw"
"$BUILD/imgpack" pack --quiet --format jpeg "$SAMPLE" "$WORK/jpeg"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "$(date -u +%Y-%m-%d)"
for run in $(seq "$RUNS"); do
    for store in raw jpeg; do
        "$BUILD/bench_read" "$WORK/$store" "$SECS" "$REPEATS" |
            sed -n "s/^\([a-z0-9_+]*\) *\([0-9]*\) records.*/$store \1 \2/p"
        "$PYTHON" "$HERE/bench_read.py" numpy_lmdb "$WORK/$store" "$SECS" \
            "$REPEATS" | sed "s/^/$store /"
    done
    "$PYTHON" "$HERE/bench_read.py" loader "$WORK/raw" "$SECS" "$REPEATS" |
        sed "s/^/raw /"
    "$PYTHON" "$HERE/bench_read.py" torchvision "$SAMPLE" "$SECS" "$REPEATS" |
        sed "s/^/files /"
done >"$WORK/results"

"$PYTHON" - "$WORK/results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    store, name, rate = line.split()[:3]
    runs[store, name].append(float(rate))
m = {k: statistics.median(v) for k, v in runs.items()}
print("\nmedian records/s over %d runs" % max(len(v) for v in runs.values()))
for (store, name), rate in sorted(m.items()):
    print("  %-6s %-16s %10.0f" % (store, name, rate))
def ratio(label, num, den, target):
    r = m[num] / m[den]
    print("  %-52s %6.2fx  (target >= %sx) %s" % (
        label, r, target, "ok" if r >= target else "MISSED"))
print("\nratios")
ratio("(b) get / mdb_get", ("raw", "get"), ("raw", "mdb_get"), 0.8)
ratio("(c) u8 batch / mdb_get+memcpy", ("raw", "batch_u8_t1"),
      ("raw", "mdb_get+memcpy"), 0.8)
ratio("(d) f32 batch 1 thread / (e) numpy+lmdb", ("raw", "batch_f32_t1"),
      ("raw", "numpy_lmdb"), 3)
ratio("(d) f32 batch 1 thread / (f) torchvision files",
      ("raw", "batch_f32_t1"), ("files", "torchvision"), 20)
ratio("(d) f32 batch 2 threads / 1 thread", ("raw", "batch_f32_t2"),
      ("raw", "batch_f32_t1"), 1.8)
ratio("jpeg u8 batch / bare libjpeg-turbo decode", ("jpeg", "batch_u8_t1"),
      ("jpeg", "jpeg_decode"), 0.9)
PY
