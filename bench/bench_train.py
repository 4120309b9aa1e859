"""Training-batch benchmark (issue 11): RandomResizedCrop(224) + flip,
float32 NCHW, ImageNet mean/std, side by side with torchvision.

  bench_train.py [BUILD_DIR [SAMPLE_DIR]]

Copies SAMPLE_DIR (default ../shared/data/imagenet-sample) to /dev/shm
and packs it there with --crop 0, raw and jpeg q90, then runs ROUNDS
rounds (env, default 3) of every case, each for SECONDS_PER_CASE (env,
default 3), interleaved, and prints the median records/s per case and the
ratios the issue's floors are stated in. Beside each single-process
figure it prints records per CPU second of the process (children's for
bench_decode): on a machine other work keeps busy, the one-thread ratios
are steadier by CPU time than by the clock.

  imgpack_{raw,jpeg}_t{1,2}  imgpack_batcher_run, 256 per batch, 1/2 threads
  torchvision_1proc          the original JPEGs: open, convert('RGB'),
                             RandomResizedCrop(224), RandomHorizontalFlip,
                             ToTensor, Normalize; torch.set_num_threads(1)
  torchvision_dl2            the same through DataLoader(num_workers=2),
                             batches of 64 (timed after the first batch)
  jpeg_decode                bench_decode (bare libjpeg-turbo, one core)
                             over the jpeg store's payloads
  prefetch                   2 batches in flight, 1 thread, behind a sleep
                             of 1.5x the batch time standing in for a
                             training step: the time still spent waiting
                             for a batch, as a fraction of the batch time
"""
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SAMPLE = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    HERE, "..", "..", "shared", "data", "imagenet-sample")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("SECONDS_PER_CASE", "3"))
BATCH = 256
os.environ.setdefault("IMGPACK_LIBRARY", os.path.join(BUILD, "libimgpack.so"))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import imgpack  # noqa: E402
from imgpack import _lib  # noqa: E402
from imgpack._lib import lib  # noqa: E402

MEAN, STD = imgpack.IMAGENET_MEAN, imgpack.IMAGENET_STD


def make_batcher(reader, threads, prefetch=0):
    opts = _lib.c_opts_p()
    assert lib.imgpack_batch_options_create(ctypes.byref(opts)) == 0
    for status in (
            lib.imgpack_batch_options_set_crop(opts, 224, 224,
                                               _lib.CROP_RANDOM_RESIZED),
            lib.imgpack_batch_options_set_flip(opts, 1),
            lib.imgpack_batch_options_set_threads(opts, threads),
            lib.imgpack_batch_options_set_prefetch(opts, prefetch)):
        assert status == 0
    b = _lib.c_batcher_p()
    status = lib.imgpack_batcher_create(ctypes.byref(b), reader._handle, opts)
    lib.imgpack_batch_options_destroy(opts)
    assert status == 0, lib.imgpack_batcher_errmsg(b)
    return b


class Batches:
    """Epochs of a store in shuffled batches of BATCH, into one buffer."""

    def __init__(self, reader, threads, prefetch=0):
        self.b = make_batcher(reader, threads, prefetch)
        self.n = len(reader)
        self.epoch = 0
        self.out = [np.empty((BATCH, 3, 224, 224), np.float32)
                    for _ in range(max(prefetch, 1))]
        self.order = np.empty(0, np.uint64)

    def indices(self):
        if self.order.size < BATCH:
            self.epoch += 1
            self.order = np.concatenate([self.order, imgpack.epoch_indices(
                self.n, self.epoch, 0)])
        chunk, self.order = self.order[:BATCH], self.order[BATCH:]
        return np.ascontiguousarray(chunk)

    def call(self, fn, out):
        idx = self.indices()
        status = fn(self.b, idx.ctypes.data_as(_lib.u64_p), idx.size, 0,
                    self.epoch, out.ctypes.data, out.nbytes, None)
        assert status == 0, lib.imgpack_batcher_errmsg(self.b)

    def run(self):
        self.call(lib.imgpack_batcher_run, self.out[0])
        return BATCH

    def close(self):
        lib.imgpack_batcher_destroy(self.b)


def timed(step, seconds):
    """(records per second, records per CPU second of this process)."""
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        done += step()
    return (done / (time.perf_counter() - start),
            done / (time.process_time() - cpu))


def torchvision_transform():
    from torchvision import transforms
    return transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def torchvision_1proc(paths):
    import torch
    from PIL import Image
    torch.set_num_threads(1)
    transform = torchvision_transform()
    position = [0]

    def step():
        path = paths[position[0] % len(paths)]
        position[0] += 1
        with open(path, "rb") as f:
            transform(Image.open(f).convert("RGB"))
        return 1
    return timed(step, SECONDS)


def torchvision_dl2():
    import torch
    from torchvision import datasets
    data = datasets.ImageFolder(SAMPLE, torchvision_transform())
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True,
                                         num_workers=2)
    it = iter(loader)
    next(it)  # workers started and warm

    def step():
        nonlocal it
        try:
            images, _ = next(it)
        except StopIteration:
            it = iter(loader)
            images, _ = next(it)
        return len(images)
    rate = timed(step, SECONDS)[0]
    del it
    return rate, float("nan")  # the work is in the workers


def jpeg_decode(files):
    passes = max(3, int(SECONDS * 2))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([os.path.join(BUILD, "bench_decode"), str(passes)]
                         + files, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime
           - before.ru_stime)
    return float(out.stdout.split()[0]), passes * len(files) / cpu


def prefetch(reader):
    """Steps of a sleep of 1.5x the batch time, with 2 batches in flight:
    the time the loop waits for its next batch, per step, as a fraction
    of the batch time (0: hidden; 1: as if there were no prefetch). The
    batch time is the median of 3 batches just before, by the same
    batcher; the first wait, for a batch submitted just before it, is
    not counted."""
    q = Batches(reader, 1, prefetch=2)
    try:
        times = []
        for k in range(4):
            start = time.perf_counter()
            q.call(lib.imgpack_batcher_run, q.out[k % 2])
            times.append(time.perf_counter() - start)
        batch_seconds = statistics.median(times[1:])
        step_time = 1.5 * batch_seconds
        steps = max(4, int(SECONDS / step_time))
        waited = 0.0
        for k in range(2):
            q.call(lib.imgpack_batcher_submit, q.out[k])
        for k in range(steps):
            start = time.perf_counter()
            assert lib.imgpack_batcher_wait(q.b) == 0
            if k > 0:
                waited += time.perf_counter() - start
            time.sleep(step_time)  # the training step, using batch k
            q.call(lib.imgpack_batcher_submit, q.out[k % 2])
        for _ in range(2):
            assert lib.imgpack_batcher_wait(q.b) == 0
    finally:
        q.close()
    return waited / (steps - 1) / batch_seconds


def main():
    global SAMPLE
    # In memory where there is a tmpfs: the page cache of a busy machine
    # (other benchmarks drop it) would otherwise time the disk too.
    work = tempfile.mkdtemp(prefix="bench_train.", dir="/dev/shm"
                            if os.path.isdir("/dev/shm") else None)
    subprocess.run(["cp", "-r", SAMPLE, work + "/src"], check=True)
    SAMPLE = work + "/src"
    cli = os.path.join(BUILD, "imgpack")
    subprocess.run([cli, "pack", "--quiet", "--crop", "0", SAMPLE,
                    work + "/raw"], check=True)
    subprocess.run([cli, "pack", "--quiet", "--crop", "0", "--format", "jpeg",
                    "--quality", "90", SAMPLE, work + "/jpeg"], check=True)
    readers = {k: imgpack.Reader(os.path.join(work, k))
               for k in ("raw", "jpeg")}
    files = []
    for i in range(len(readers["jpeg"])):
        name = os.path.join(work, "payload%03d.jpg" % i)
        with open(name, "wb") as f:
            f.write(readers["jpeg"].get(i)[0])
        files.append(name)
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(SAMPLE)
                   for f in fs)
    print("machine: %s, %d cores; %s" % (
        subprocess.run("lscpu | sed -n 's/^Model name: *//p'", shell=True,
                       capture_output=True, text=True).stdout.strip(),
        os.cpu_count(), time.strftime("%Y-%m-%d", time.gmtime())))
    print("rounds: %d x %.0f s per case" % (ROUNDS, SECONDS))
    results = {}
    for _ in range(ROUNDS):
        for store in ("raw", "jpeg"):
            for threads in (1, 2):
                q = Batches(readers[store], threads)
                q.run()  # warm: scratch, page cache
                results.setdefault("imgpack_%s_t%d" % (store, threads),
                                   []).append(timed(q.run, SECONDS))
                q.close()
        results.setdefault("torchvision_1proc", []).append(
            torchvision_1proc(paths))
        results.setdefault("torchvision_dl2", []).append(torchvision_dl2())
        results.setdefault("jpeg_decode", []).append(jpeg_decode(files))
        exposed = prefetch(readers["raw"])
        results.setdefault("prefetch_exposed", []).append((exposed, exposed))
    m = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    print("\nmedian over %d rounds: records/s, records per CPU second of "
          "the process;\nprefetch: fraction of the batch time" % ROUNDS)
    for name, value in m.items():
        if name == "prefetch_exposed":
            print("  %-20s %10.3f   (%s)" % (name, value, " ".join(
                "%.3f" % r[0] for r in results[name])))
            continue
        runs = " ".join("%.0f" % r[0] for r in results[name])
        print("  %-20s %10.0f %10.0f cpu   (%s)" % (name, value, cpu[name],
                                                   runs))

    def ratio(label, num, den, floor, by_cpu=True):
        r = m[num] / m[den]
        line = "  %-48s %6.2fx" % (label, r)
        if by_cpu:
            line += " %6.2fx cpu" % (cpu[num] / cpu[den])
        else:
            line += "           "
        print("%s  (floor %sx) %s" % (line, floor,
                                      "ok" if r >= floor else "MISSED"))
    print("\nratios (wall clock; by CPU time where both sides are one "
          "thread)")
    ratio("raw batches, 1 thread / torchvision 1 process",
          "imgpack_raw_t1", "torchvision_1proc", 10)
    ratio("jpeg batches, 1 thread / torchvision 1 process",
          "imgpack_jpeg_t1", "torchvision_1proc", 5)
    ratio("jpeg batches, 1 thread / bare decode", "imgpack_jpeg_t1",
          "jpeg_decode", 0.8)
    ratio("raw, 2 threads / 1 thread", "imgpack_raw_t2", "imgpack_raw_t1",
          1.8, False)
    ratio("jpeg, 2 threads / 1 thread", "imgpack_jpeg_t2", "imgpack_jpeg_t1",
          1.8, False)
    ratio("raw batches, 2 threads / torchvision DataLoader(2)",
          "imgpack_raw_t2", "torchvision_dl2", 0, False)
    ratio("jpeg batches, 2 threads / torchvision DataLoader(2)",
          "imgpack_jpeg_t2", "torchvision_dl2", 0, False)
    print("  %-48s %6.3f   (of the batch time; 0 = hidden)" % (
        "prefetch: batch time exposed per step", m["prefetch_exposed"]))
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
