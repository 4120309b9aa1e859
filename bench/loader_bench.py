#!/usr/bin/env python3
"""imgpack.Loader: the first epoch against later ones, and prefetch
hiding the batch time behind a training step.

    PYTHONPATH=python python3 bench/loader_bench.py [--store DIR] [--rounds 3]

Without --store it builds one: the shared sample (300 JPEGs) linked ten
times over into a 3,000-image tree, packed raw 224x224 (about 450 MB, in
/tmp). Each round reads the store's files first, so the page cache is
warm.

1. First epoch on a warm cache, in a new process each time: Loader(...)
   construction (which allocates and touches the output buffers), the
   first epoch, then the median of three more, and the process's minor
   page faults in the first epoch and in later ones; uint8 NHWC and
   float32 NCHW, batch 256, 2 threads. Issue 12's floor: first epoch >=
   0.8 x later ones. Then the same with the store's map faulted in
   before the first epoch ("(map)": every record read once through the
   Loader's reader, which also runs the first-read checks), which leaves
   the output buffers as the only thing new in the first epoch. And with
   verify=False ("(noverify)"): the
   default checks each record's payload CRC on its first read in a
   process (docs/FORMAT.md), which is work only the first epoch does.
   Rounds alternate the six cases.
2. Prefetch: float32 batches (1 thread) with a time.sleep standing in
   for a training step 1.5 x as long as a batch; the time the loop still
   waits for each batch, as a fraction of a batch's time, with prefetch 0
   and 2 (1: no overlap; 0: the batch is hidden behind the step).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared/data/imagenet-sample"

CHILD = r"""
import json, resource, sys, time
import imgpack
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
store, dtype, layout, touch = sys.argv[1:5]
began = time.perf_counter()
loader = imgpack.Loader(store, 256, dtype=dtype, layout=layout, threads=2,
                        verify=touch != "noverify")
made = time.perf_counter() - began
if touch == "map":
    # Fault the store's map in first (each record read once through the
    # Loader's own reader), to see what is left of the first epoch's gap.
    for i in range(len(loader._reader)):
        loader._reader.get(i)
times, faulted = [], []
for epoch in range(4):
    loader.set_epoch(epoch)
    began, before = time.perf_counter(), faults()
    for images, labels in loader:
        pass
    times.append(time.perf_counter() - began)
    faulted.append(faults() - before)
print(json.dumps({"construct": made, "epochs": times, "faults": faulted,
                  "records": loader.num_samples}))
"""


def build_store(root):
    tree = root / "tree"
    for repeat in range(10):
        for cls in sorted(SAMPLE.iterdir()):
            target = tree / cls.name
            target.mkdir(parents=True, exist_ok=True)
            for image in cls.iterdir():
                link = target / ("%d_%s" % (repeat, image.name))
                link.symlink_to(image.resolve())
    store = root / "store"
    subprocess.run([str(REPO / "build/imgpack"), "pack", "--quiet",
                    str(tree), str(store)], check=True)
    return store


def warm(store):
    """Reads the store's files, so that the page cache holds them (other
    work on the machine may have dropped it since the last round)."""
    for path in pathlib.Path(store).rglob("*.mdb"):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def first_epoch(store, rounds):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    cases = [(dtype, layout, touch) for touch in ("-", "map", "noverify")
             for dtype, layout in (("uint8", "NHWC"), ("float32", "NCHW"))]
    results = {case: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            warm(store)
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(store), *case],
                env=env, capture_output=True, text=True, check=True)
            results[case].append(json.loads(done.stdout))
    print("first epoch on a warm page cache, new process, batch 256, "
          "2 threads (medians of %d rounds)" % rounds)
    print("%-14s %10s %12s %12s %10s %14s %14s" % (
        "dtype", "construct", "first img/s", "later img/s", "ratio",
        "incl. construct", "minor faults"))
    for (dtype, _, touch), runs in results.items():
        n = runs[0]["records"]
        construct = statistics.median(r["construct"] for r in runs)
        first = statistics.median(r["epochs"][0] for r in runs)
        later = statistics.median(statistics.median(r["epochs"][1:])
                                  for r in runs)
        with_construct = statistics.median(r["construct"] + r["epochs"][0]
                                           for r in runs)
        faults = "%d / %d" % (
            statistics.median(r["faults"][0] for r in runs),
            statistics.median(statistics.median(r["faults"][1:])
                              for r in runs))
        name = dtype + ("" if touch == "-" else " (%s)" % touch)
        print("%-14s %9.3fs %12.0f %12.0f %9.2fx %13.2fx %14s" % (
            name, construct, n / first, n / later, later / first,
            later / with_construct, faults))


def prefetch(store, rounds):
    """Seconds the loop waits for each batch (inside next()), as a
    fraction of a batch's time: 1 is no overlap, 0 fully hidden."""
    import imgpack
    loader = imgpack.Loader(store, 256, threads=1)
    for _ in loader:  # warm
        pass
    began = time.perf_counter()
    for _ in loader:
        pass
    batch = (time.perf_counter() - began) / len(loader)
    loader.close()
    step = 1.5 * batch
    rows = {0: [], 2: []}
    for _ in range(rounds):
        for depth in rows:
            loader = imgpack.Loader(store, 256, threads=1, prefetch=depth)
            waited, it = 0.0, iter(loader)
            next(it)  # the first batch cannot be hidden
            while True:
                time.sleep(step)
                began = time.perf_counter()
                try:
                    next(it)
                except StopIteration:
                    break
                waited += time.perf_counter() - began
            rows[depth].append(waited / (len(loader) - 1) / batch)
            loader.close()
    print("\nprefetch: float32 NCHW batch 256, 1 thread; a batch takes "
          "%.1f ms, the step (a sleep) %.1f ms" % (batch * 1e3, step * 1e3))
    for depth, exposed in rows.items():
        print("prefetch=%d: the loop waits %.2f of a batch's time per step"
              % (depth, statistics.median(exposed)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--store")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "python"))
    with tempfile.TemporaryDirectory() as tmp:
        store = pathlib.Path(args.store) if args.store else \
            build_store(pathlib.Path(tmp))
        first_epoch(store, args.rounds)
        prefetch(store, args.rounds)


if __name__ == "__main__":
    main()
