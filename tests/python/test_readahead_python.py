"""Read-ahead and the windowed order (issue 12): every read path gives the
same values (plain, prefetched, batches with and without read-ahead,
windowed order) on raw and jpeg stores, single and sharded; prefetch
really brings records into the page cache, within its limit; the windowed
order is a seeded permutation of windows and ranks partition it as
DistributedSampler does; and a Loader epoch completes inside a memory
cgroup smaller than the store."""
import ctypes
import mmap
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import imgpack
from conftest import SAMPLE, pack
import shardify

RECORD = 224 * 224 * 3
PAGE = mmap.PAGESIZE


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """raw and jpeg packs of the shared sample, single and in 3 shards."""
    root = tmp_path_factory.mktemp("readahead")
    out = {}
    for fmt in ("raw", "jpeg"):
        single = root / fmt
        pack(SAMPLE, single, "--jobs", "2", "--format", fmt)
        out[fmt, "single"] = single
        out[fmt, "sharded"] = shardify.split(single, root / (fmt + "3"), 3)
    return out


def data_files(path):
    if (path / "data.mdb").exists():
        return [path / "data.mdb"]
    return sorted(path.glob("shard-*/data.mdb"))


def evict(path):
    """Drops the store's pages from the page cache (those no process maps),
    so that what follows reads from the disk."""
    for f in data_files(path):
        fd = os.open(f, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def plain_images(path):
    with imgpack.Reader(path) as r:
        r.set_prefetch_limit(0)
        return np.stack([r.image(i, copy=True)[0] for i in range(len(r))]), \
            r.labels()


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_every_read_path_gives_the_same_values(stores, fmt, layout):
    want, labels = plain_images(stores[fmt, "single"])
    path = stores[fmt, layout]
    evict(path)
    with imgpack.Reader(path) as r:
        n = len(r)
        order = imgpack.epoch_indices(n, seed=5)
        for start in range(0, n, 64):
            r.prefetch(order[start:start + 64])
            for i in order[start:start + 64]:
                assert np.array_equal(r.image(int(i), copy=True)[0],
                                      want[i]), (fmt, layout, i)
    for window, limit in ((0, None), (0, 0), (7, None), (64, 1 << 20)):
        evict(path)
        loader = imgpack.Loader(path, 32, seed=3, layout="NHWC",
                                dtype="uint8", threads=2,
                                order_window=window)
        if limit is not None:
            loader._reader.set_prefetch_limit(limit)
        seen = []
        for number, (images, got) in enumerate(loader):
            chunk = loader.indices()[number * 32:(number + 1) * 32]
            assert np.array_equal(images, want[chunk]), (window, number)
            assert np.array_equal(got, labels[chunk])
            seen.extend(chunk.tolist())
        assert sorted(seen) == list(range(n))
        loader.close()


def test_dataset_prefetch_batch_sampler_in_forked_workers(stores):
    import torch
    from torch.utils.data import BatchSampler, DataLoader
    path = stores["jpeg", "sharded"]
    want, labels = plain_images(stores["jpeg", "single"])
    ds = imgpack.Dataset(path, copy=True)
    sampler = imgpack.EpochSampler(len(ds), seed=2, window=16)
    batches = imgpack.PrefetchBatchSampler(BatchSampler(sampler, 40, False),
                                           ds)
    assert len(batches) == -(-len(ds) // 40)
    for epoch in (0, 1):
        batches.set_epoch(epoch)
        order = imgpack.epoch_indices(len(ds), epoch, 2, window=16)
        evict(path)
        got = DataLoader(ds, batch_sampler=batches, num_workers=2,
                         multiprocessing_context="fork")
        for number, (images, y) in enumerate(got):
            chunk = order[number * 40:(number + 1) * 40]
            assert torch.equal(images, torch.from_numpy(want[chunk]))
            assert np.array_equal(y.numpy(), labels[chunk])


def resident_pages(path):
    """Pages of data.mdb in the page cache, by mincore on a map of ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    os.close(fd)
    vec = ctypes.create_string_buffer((size + PAGE - 1) // PAGE)
    assert libc.mincore(addr, size, vec) == 0, ctypes.get_errno()
    libc.munmap(addr, size)
    return sum(b & 1 for b in vec.raw)


def test_prefetch_reads_ahead_within_its_limit(stores, tmp_path):
    import shutil
    path = shutil.copytree(stores["raw", "single"], tmp_path / "store")
    data = path / "data.mdb"
    per_record = -(-RECORD // PAGE)
    with imgpack.Reader(path) as r:
        r.set_prefetch_limit(0)
        evict(path)
        base = resident_pages(data)
        r.prefetch(np.arange(100, 200))
        assert resident_pages(data) - base < 8, "limit 0 reads nothing"

        r.set_prefetch_limit(10 * per_record * PAGE)
        r.prefetch(np.arange(0, 100))
        # The reads are queued, not waited for: give them a moment.
        for _ in range(100):
            grown = resident_pages(data) - base
            if grown >= 9 * per_record:
                break
            time.sleep(0.05)
        assert 9 * per_record <= grown <= 12 * per_record, grown

        # Records 100..159 lie end to end (8.7 MB), more than Linux reads
        # for one madvise call on a disk with an 8 MiB read-ahead window:
        # asked for in one piece, 172 of their pages (4.6 records) were
        # missing. Pages the reader's open brought in with the B-tree's
        # (the file system reads whole folios around them) were in `base`
        # already and do not count, hence 108 of 110.
        r.set_prefetch_limit(imgpack.reader.PREFETCH_DEFAULT_LIMIT)
        r.prefetch(np.arange(100, 200))
        for _ in range(100):
            grown = resident_pages(data) - base
            if grown >= 108 * per_record:
                break
            time.sleep(0.05)
        assert grown >= 108 * per_record, grown

        with pytest.raises(imgpack.ImgpackError, match="ERR_RANGE"):
            r.prefetch([5, len(r)])
        with pytest.raises(ValueError):
            r.set_prefetch_limit(imgpack.reader.PREFETCH_MAX_LIMIT + 1)


def test_windowed_order():
    n, w = 1000, 50
    plain = imgpack.epoch_indices(n, 3, 9)
    for same in (0, 1, n, n + 5):
        assert np.array_equal(imgpack.epoch_indices(n, 3, 9, window=same),
                              plain)
    order = imgpack.epoch_indices(n, 3, 9, window=w)
    assert np.array_equal(np.sort(order), np.arange(n))
    assert np.array_equal(order, imgpack.epoch_indices(n, 3, 9, window=w))
    assert not np.array_equal(order, imgpack.epoch_indices(n, 4, 9, window=w))
    assert not np.array_equal(order, imgpack.epoch_indices(n, 3, 8, window=w))
    # Each window's records are consecutive in the order, windows and
    # records within them shuffled.
    windows = order.reshape(-1, w) // w
    assert (windows == windows[:, :1]).all()
    assert not np.array_equal(windows[:, 0], np.arange(n // w))
    assert sum(np.array_equal(np.sort(row), row)
               for row in order.reshape(-1, w)) < 2
    # A shorter last window, and no shuffle.
    ragged = imgpack.epoch_indices(1003, 1, 1, window=w)
    runs = ragged // w
    assert np.array_equal(np.sort(ragged), np.arange(1003))
    assert (np.diff(runs) != 0).sum() == 1003 // w
    assert np.array_equal(imgpack.epoch_indices(n, 1, 1, shuffle=False,
                                                window=w), np.arange(n))
    # DistributedSampler's padding and partition over the windowed order.
    for drop_last in (False, True):
        full = imgpack.epoch_indices(1003, 2, 7, window=w)
        ranks = [imgpack.epoch_indices(1003, 2, 7, rank=k, world_size=4,
                                       drop_last=drop_last, window=w)
                 for k in range(4)]
        padded = full[:1000] if drop_last else np.concatenate(
            [full, full[:1]])
        for k in range(4):
            assert np.array_equal(ranks[k], padded[k::4])


CHILD = r"""
import sys, numpy as np, imgpack
loader = imgpack.Loader(sys.argv[1], 64, seed=1, layout="NHWC",
                        dtype="uint8", threads=2)
sums = np.zeros(len(loader._reader), np.int64)
for number, (images, labels) in enumerate(loader):
    chunk = loader.indices()[number * 64:(number + 1) * 64]
    sums[chunk] = images.reshape(len(chunk), -1).sum(1, dtype=np.int64)
np.save(sys.argv[2], sums)
"""


def memory_cgroup(limit):
    """A new child memory cgroup capped at `limit` bytes: (dir, procs file,
    file counting the times usage hit the cap); skips when there is none
    we may make."""
    if os.geteuid() != 0:
        pytest.skip("memory cgroup test: needs root to make a cgroup")
    name = "imgpack-test-%d" % os.getpid()
    try:
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
            with open("/proc/self/cgroup") as f:
                mine = f.read().split("::", 1)[1].strip()
            path = os.path.join("/sys/fs/cgroup", mine.lstrip("/"), name)
            os.mkdir(path)
            with open(os.path.join(path, "memory.max"), "w") as f:
                f.write(str(limit))
            return path, "memory.events"
        with open("/proc/self/cgroup") as f:
            mine = [line.split(":", 2)[2].strip() for line in f
                    if line.split(":")[1] == "memory"]
        if not mine:
            pytest.skip("memory cgroup test: no memory controller")
        path = os.path.join("/sys/fs/cgroup/memory", mine[0].lstrip("/"),
                            name)
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        return path, "memory.failcnt"
    except OSError as e:
        pytest.skip("memory cgroup test: cannot make a cgroup (%s)" % e)


def hits(path, counter):
    with open(os.path.join(path, counter)) as f:
        text = f.read()
    if counter == "memory.events":
        return int(dict(line.split() for line in text.splitlines())["max"])
    return int(text)


def test_epoch_under_a_memory_limit_below_the_store(tmp_path):
    """A store of 1,800 raw records (270 MB: the sample six times over,
    through symlinks) read by a Loader in a cgroup capped at 128 MB, batch
    read-ahead on: the epoch completes, every record's pixels are right,
    and the cap was hit (the page cache had to let go as it went)."""
    limit = 128 << 20
    path, counter = memory_cgroup(limit)
    try:
        tree = tmp_path / "src"
        for cls in sorted(os.listdir(SAMPLE)):
            (tree / cls).mkdir(parents=True)
            for name in sorted(os.listdir(SAMPLE / cls)):
                for c in range(6):
                    os.symlink(os.path.realpath(SAMPLE / cls / name),
                               tree / cls / ("c%d_%s" % (c, name)))
        store = tmp_path / "store"
        pack(tree, store, "--jobs", "2")
        assert os.path.getsize(store / "data.mdb") > 2 * limit
        with imgpack.Reader(store) as r:
            want = np.array([r.image(i)[0].sum(dtype=np.int64)
                             for i in range(len(r))])
        evict(store)
        env = dict(os.environ)
        # Under ASan, freed memory waits in a 256 MB quarantine by default.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":quarantine_size_mb=16"
        out = tmp_path / "sums.npy"
        done = subprocess.run(
            ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
             os.path.join(path, "cgroup.procs"), sys.executable, "-c", CHILD,
             str(store), str(out)],
            env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert np.array_equal(np.load(out), want)
        assert hits(path, counter) > 0, "the cap never bound"
    finally:
        os.rmdir(path)
