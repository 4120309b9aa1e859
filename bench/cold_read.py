"""Cold and capped reading (issue 12): a store larger than what the page
cache holds, read at the disk's speed.

    sudo /usr/bin/python3 bench/cold_read.py [--store DIR | --copies N]
        [--rounds R] [--cap BYTES] [--build build]

Without --store, packs the shared ImageNet sample N times over (default 10:
3,000 raw 224x224 records, 434 MB) through a tree of symlinks. Then, in R
interleaved rounds, each after `sync; echo 3 > /proc/sys/vm/drop_caches`:

  loader         one epoch of imgpack.Loader, uint8, batches of 256, 2
                 threads, shuffled: the read-ahead of each batch on
  loader_nora    the same with read-ahead off (prefetch limit 0): the page
                 fault per 4 KiB that the reader did before
  loader_w256    loader in the windowed order, windows of 256 records
  pread          every record's whole value read by one pread(2) at its
                 offset in data.mdb, in a random order, 2 threads: what the
                 disk gives random whole-record reads
  pread16        the same with 16 threads: the disk with a deep queue
  seq            data.mdb read front to back in 1 MiB preads: the disk's
                 sequential rate (MB/s)

and then "capped": a child cgroup whose memory limit (default half the
store) lets the page cache hold only part of the store runs EPOCHS Loader
epochs (uint8, 2 threads) and the same pread pass, each in a new process;
epochs after the first are the steady state of a store larger than
memory. Prints medians over the rounds and the ratios the issue's floors
are stated in. Needs root (drop_caches, cgroups); cgroup v1 or v2.
"""
import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = 256
EPOCHS = 3


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def record_spans(store):
    """(offset, size) of every record's value in data.mdb."""
    import lmdb
    import numpy as np
    env = lmdb.open(store, readonly=True, lock=False, max_dbs=2)
    data = os.path.realpath(os.path.join(store, "data.mdb"))
    with open("/proc/self/maps") as f:
        base = [int(line.split("-")[0], 16) for line in f
                if line.rstrip().endswith(" " + data)
                and line.split()[2] == "00000000"][0]
    db = env.open_db(b"records", create=False)
    meta = env.open_db(b"meta", create=False)
    spans = []
    # python-lmdb touches every page of a value it returns (its "preload"),
    # so this reads the whole file: callers drop the cache afterwards.
    with env.begin(buffers=True) as txn:
        count = int(bytes(txn.get(b"count", db=meta)))
        for i in range(count):
            value = txn.get(struct.pack(">Q", i), db=db)
            address = np.frombuffer(value, np.uint8).ctypes.data
            spans.append((address - base, len(value)))
    env.close()
    return spans


def child_pread(store, threads):
    """Random whole-record preads; prints records/s."""
    import random
    spans = record_spans(store)
    random.Random(1).shuffle(spans)
    drop_caches()
    fd = os.open(os.path.join(store, "data.mdb"), os.O_RDONLY)
    size = max(s for _, s in spans)
    done = []

    def run(part):
        buf = bytearray(size)
        for offset, n in part:
            os.preadv(fd, [memoryview(buf)[:n]], offset)
        done.append(len(part))

    start = time.perf_counter()
    workers = [threading.Thread(target=run, args=(spans[t::threads],))
               for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(sum(done) / (time.perf_counter() - start))
    os.close(fd)


def child_seq(store):
    """Front-to-back 1 MiB preads; prints MB/s."""
    fd = os.open(os.path.join(store, "data.mdb"), os.O_RDONLY)
    buf = bytearray(1 << 20)
    total, start = 0, time.perf_counter()
    while True:
        n = os.preadv(fd, [buf], total)
        if n <= 0:
            break
        total += n
    print(total / (time.perf_counter() - start) / 1e6)
    os.close(fd)


def child_loader(store, limit, epochs, window=0):
    """Loader epochs; prints records/s of each."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import imgpack
    loader = imgpack.Loader(store, BATCH, dtype="uint8", threads=2, seed=1,
                            order_window=window)
    loader._reader.set_prefetch_limit(limit)
    rates = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        n, start = 0, time.perf_counter()
        for _, labels in loader:
            n += len(labels)
        rates.append(n / (time.perf_counter() - start))
    print(" ".join("%.1f" % r for r in rates))


def run_child(args, cgroup_procs=None):
    cmd = [sys.executable, os.path.abspath(__file__)] + [str(a) for a in args]
    if cgroup_procs:
        # The shell joins the cgroup, then becomes the child: every page
        # the child reads is charged to the capped group.
        cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', cgroup_procs] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=dict(os.environ))
    return [float(x) for x in out.stdout.split()]


def make_cgroup(limit):
    """A child memory cgroup limited to `limit` bytes: (procs file, path,
    file holding its peak usage)."""
    name = "imgpack-cold-read-%d" % os.getpid()
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
        path = os.path.join("/sys/fs/cgroup", name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.max"), "w") as f:
            f.write(str(limit))
        return os.path.join(path, "cgroup.procs"), path, "memory.peak"
    with open("/proc/self/cgroup") as f:
        mine = [line.split(":", 2)[2].strip() for line in f
                if line.split(":")[1] == "memory"][0]
    path = os.path.join("/sys/fs/cgroup/memory", mine.lstrip("/"), name)
    os.mkdir(path)
    with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
        f.write(str(limit))
    return (os.path.join(path, "cgroup.procs"), path,
            "memory.max_usage_in_bytes")


def build_store(build, copies, work):
    sample = os.path.join(ROOT, "..", "shared", "data", "imagenet-sample")
    tree = os.path.join(work, "src")
    for cls in sorted(os.listdir(sample)):
        os.makedirs(os.path.join(tree, cls))
        for name in sorted(os.listdir(os.path.join(sample, cls))):
            for c in range(copies):
                os.symlink(os.path.realpath(os.path.join(sample, cls, name)),
                           os.path.join(tree, cls, "c%02d_%s" % (c, name)))
    store = os.path.join(work, "store")
    subprocess.run([os.path.join(build, "imgpack"), "pack", "--quiet",
                    "--jobs", "2", "--format", "raw", tree, store],
                   check=True)
    return store


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--store")
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cap", type=int, default=0,
                   help="cgroup memory limit in bytes (default half the "
                        "store)")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = p.parse_args()
    os.environ.setdefault("IMGPACK_LIBRARY",
                          os.path.join(os.path.abspath(a.build),
                                       "libimgpack.so"))
    if os.geteuid() != 0:
        sys.exit("cold_read.py: run as root (drop_caches, cgroups)")
    with tempfile.TemporaryDirectory() as work:
        store = a.store or build_store(a.build, a.copies, work)
        size = os.path.getsize(os.path.join(store, "data.mdb"))
        n = len(record_spans(store))
        print("store: %s, %d records, %.0f MB; machine: %s cores, %s" % (
            store, n, size / 1e6, os.cpu_count(),
            time.strftime("%Y-%m-%d", time.gmtime())))
        limit = 64 << 20
        cases = {"loader": ["_loader", store, limit, 1],
                 "loader_nora": ["_loader", store, 0, 1],
                 "loader_w256": ["_loader", store, limit, 1, 256],
                 "pread": ["_pread", store, 2],
                 "pread16": ["_pread", store, 16],
                 "seq": ["_seq", store]}
        rates = {k: [] for k in cases}
        for r in range(a.rounds):
            for name, args in cases.items():
                drop_caches()
                rates[name].append(run_child(args)[0])
            print("round %d: %s" % (r + 1, "  ".join(
                "%s %.0f" % (k, v[-1]) for k, v in rates.items())))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print("\ncold, medians of %d rounds (records/s; seq in MB/s):"
              % a.rounds)
        print("  loader %.0f   loader_nora %.0f   pread %.0f   pread16 %.0f"
              "   seq %.0f MB/s" % (med["loader"], med["loader_nora"],
                                    med["pread"], med["pread16"], med["seq"]))
        print("  pread moves %.0f MB/s" % (med["pread"] * size / n / 1e6))
        print("  loader / pread = %.2f   (floor 0.80)"
              % (med["loader"] / med["pread"]))
        print("  loader / loader_nora = %.1f   loader_w256 / loader = %.2f"
              % (med["loader"] / med["loader_nora"],
                 med["loader_w256"] / med["loader"]))

        cap = a.cap or size // 2
        procs, path, peak = make_cgroup(cap)
        try:
            drop_caches()
            epochs = run_child(["_loader", store, limit, EPOCHS], procs)
            drop_caches()
            nora = run_child(["_loader", store, 0, EPOCHS], procs)
            drop_caches()
            pread = run_child(["_pread", store, 2], procs)[0]
            with open(os.path.join(path, peak)) as f:
                peak_bytes = int(f.read())
        finally:
            os.rmdir(path)
        steady = statistics.median(epochs[1:])
        print("\ncapped at %.0f MB (store %.0f MB), peak usage %.0f MB:"
              % (cap / 1e6, size / 1e6, peak_bytes / 1e6))
        print("  loader epochs %s   loader_nora epochs %s   pread %.0f" % (
            " ".join("%.0f" % e for e in epochs),
            " ".join("%.0f" % e for e in nora), pread))
        print("  steady loader / cold pread = %.2f   (floor 0.80)"
              % (steady / med["pread"]))
        print("  steady loader / capped pread = %.2f" % (steady / pread))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_loader":
        child_loader(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                     int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif len(sys.argv) > 1 and sys.argv[1] == "_pread":
        child_pread(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_seq":
        child_seq(sys.argv[2])
    else:
        main()
