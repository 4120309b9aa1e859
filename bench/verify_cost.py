"""What the default record checks cost a training epoch (docs/BENCHMARKS.md,
"Checking records").

Packs the shared sample raw at 224 (300 records, 150 KB each), then in
interleaved rounds opens a fresh Loader with the default checks and one
with verify=False, and times epoch 1 (where the default checks every
payload CRC once) and epoch 2 (where it only parses headers) of each, reading every record
once per epoch: as zero-copy views (Reader.image, the bare read, where
the CRC weighs most), and with a Loader in batches of 64 on one thread as
uint8 and as normalized float32 NCHW (what a trainer asks for). Prints
the medians, their ratios and the difference per record.

    /usr/bin/python3 bench/verify_cost.py [BUILD_DIR [SAMPLE_DIR [ROUNDS]]]
"""
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SAMPLE = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/imagenet-sample"
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 15
os.environ.setdefault("IMGPACK_LIBRARY", os.path.join(BUILD, "libimgpack.so"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import imgpack  # noqa: E402


def epoch_seconds(source):
    """Seconds to read every record once: `source` is a Loader, or a
    Reader read record by record as zero-copy views (the bare read)."""
    start = time.perf_counter()
    if isinstance(source, imgpack.Reader):
        for i in range(len(source)):
            source.image(i)
    else:
        for images, labels in source:
            pass
    return time.perf_counter() - start


def open_source(store, kind, verify):
    if kind == "views":
        return imgpack.Reader(store, verify=verify)
    return imgpack.Loader(store, 64, shuffle=False, dtype=kind, threads=1,
                          verify=verify)


KINDS = ("views", "uint8", "float32")


def main():
    with tempfile.TemporaryDirectory() as work:
        store = os.path.join(work, "raw")
        subprocess.run([os.path.join(BUILD, "imgpack"), "pack", "--quiet",
                        SAMPLE, store], check=True)
        count = len(imgpack.Reader(store))
        times = {}
        for round_ in range(ROUNDS):
            for kind in KINDS:
                # Alternate which goes first: a busy machine drifts.
                order = (True, False) if round_ % 2 else (False, True)
                for verify in order:
                    source = open_source(store, kind, verify)
                    for epoch in (1, 2):
                        times.setdefault((kind, verify, epoch), []).append(
                            epoch_seconds(source))
                    del source
        print("machine: %s, %d cores; %s; %d rounds; %d raw 224x224 records"
              % (platform.processor() or platform.machine(), os.cpu_count(),
                 time.strftime("%Y-%m-%d", time.gmtime()), ROUNDS, count))
        print("%-8s %-6s %12s %12s %8s %14s" % (
            "read", "epoch", "checked ms", "unchecked ms", "ratio",
            "us per record"))
        for kind in KINDS:
            for epoch in (1, 2):
                on = statistics.median(times[(kind, True, epoch)]) * 1e3
                off = statistics.median(times[(kind, False, epoch)]) * 1e3
                print("%-8s %-6d %12.2f %12.2f %8.3f %14.1f"
                      % (kind, epoch, on, off, on / off,
                         (on - off) * 1e3 / count))


if __name__ == "__main__":
    main()
