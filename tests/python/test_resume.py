"""Interrupted packs: SIGKILL at random moments, a full disk, a reader
beside the writer. The finished store must equal an uninterrupted pack's."""
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import (IMGPACK, REPO_SAMPLE, SAMPLE, catalog, pack,
                      run_imgpack)
from storefile import Store

# Bounded: this many kills (fewer under ASan, where a pack runs about
# four times slower) of a pack of the sample three times over: 900
# records, about a second with --jobs 1 in Release, in batches that
# commit every 223 records (32 MiB) or second (src/pack/writer.h), so
# that kills land before the first commit and after later ones.
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
KILLS = 6 if ASAN else 10
COPIES = 3
# Rows of the dataset table that say when and how, not what.
VOLATILE = ("created", "command", "resumes")


def catalog_rows(store):
    db = catalog(store)
    rows = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("classes", "images", "rejects")}
    rows["dataset"] = [r for r in db.execute(
        "SELECT key, value FROM dataset ORDER BY key") if r[0] not in VOLATILE]
    return rows


def committed(out):
    """Records a pack in progress has committed so far (0 before any)."""
    import json
    done = run_imgpack("info", "--json", out)
    return json.loads(done.stdout)["count"] if done.returncode == 0 else 0


def start_pack(src, out, *options):
    """The one command line of every run and retry: --resume starts a new
    pack where there is nothing to resume."""
    return subprocess.Popen([IMGPACK, "pack", "--quiet", "--resume",
                             *options, str(src), str(out)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def records_committed(out):
    """The `count` a killed pack left in LMDB's meta database, read with
    python-lmdb as docs/FORMAT.md says: 0 where it died before LMDB held
    one (no data.mdb yet, an empty or half-made one, no meta database, no
    header)."""
    import lmdb
    data = out / "data.mdb"
    if not data.exists() or data.stat().st_size == 0:
        return 0
    try:
        env = lmdb.open(str(out), readonly=True, lock=False, max_dbs=2)
    except lmdb.InvalidError:  # killed before its meta pages were written
        return 0
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin() as txn:
            value = txn.get(b"count", db=meta)
        return 0 if value is None else int(value)
    except lmdb.NotFoundError:
        return 0
    finally:
        env.close()


def kill_plan(rng):
    """When to kill each run: whether to wait first for it to commit a
    batch (seen through `imgpack info`, a proper reader), then for how
    long, as a fraction of an uninterrupted pack's time (one batch takes
    about a quarter of it) and, when not waiting for a commit, of the
    share of the records left. The first run dies before the first
    commit; the second just after it; the third, a resume, just after a
    later one; the rest anywhere. None: the last run finishes."""
    return [(False, rng.uniform(0.005, 0.08)), (True, rng.uniform(0, 0.08)),
            (True, rng.uniform(0, 0.08))] + [
        (False, rng.uniform(0.005, 0.95)) for _ in range(KILLS - 3)] + [None]


def test_sigkill_at_random_moments_then_resume(tmp_path, open_store):
    src = repeated_sample(tmp_path / "src", COPIES)
    total = COPIES * sum(len(os.listdir(SAMPLE / c))
                         for c in os.listdir(SAMPLE))
    whole = tmp_path / "whole"
    started = time.monotonic()
    pack(src, whole, "--jobs", "1")
    duration = time.monotonic() - started
    out = tmp_path / "killed"
    rng = random.Random(20261202)
    kills = []  # (records committed before the run, after its kill)
    for when in kill_plan(rng):
        before = records_committed(out)
        proc = start_pack(src, out, "--jobs", "1")
        if when is not None:
            after_commit, fraction = when
            while after_commit and proc.poll() is None and \
                    committed(out) <= before:
                time.sleep(0.01)
            time.sleep(fraction * duration * (
                1 if after_commit else 1 - before / total))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        stderr = proc.communicate(timeout=120)[1]
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, stderr
        kills.append((before, records_committed(out)))
    # Killed before the first commit, and after a later one in a run that
    # resumed a pack cut mid-way.
    assert any(after == 0 for _, after in kills), kills
    assert any(0 < before < after for before, after in kills), kills
    assert open_store(out).values() == open_store(whole).values()
    assert open_store(out).meta("labels") == open_store(whole).meta("labels")
    assert catalog_rows(out) == catalog_rows(whole)


def repeated_sample(root, copies):
    """The sample's ImageFolder tree with every image `copies` times
    (symlinks), so that a pack runs on well past its first batch."""
    for cls in sorted(os.listdir(SAMPLE)):
        (root / cls).mkdir(parents=True)
        for name in sorted(os.listdir(SAMPLE / cls)):
            for k in range(copies):
                (root / cls / f"{k}_{name}").symlink_to(SAMPLE / cls / name)
    return root


def test_incomplete_store_is_refused_by_readers_and_flagged_by_info(
        tmp_path):
    out = tmp_path / "s"
    # A batch is up to 32 MiB (223 of these records): three times the
    # sample leaves a second's packing after the first commit to kill in.
    src = repeated_sample(tmp_path / "src", 3)
    proc = start_pack(src, out, "--jobs", "1")
    deadline = time.time() + 60
    while time.time() < deadline and committed(out) == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert "INCOMPLETE" in run_imgpack("info", out, check=0).stdout
    sys.path.insert(0, os.environ.get("PYTHONPATH", "python"))
    import imgpack
    try:
        imgpack.Reader(str(out))
        raise AssertionError("an incomplete store was opened")
    except imgpack.ImgpackError as error:
        assert error.name == "ERR_INCOMPLETE"
    with imgpack.Reader(str(out), incomplete=True) as reader:
        assert 0 < len(reader) < 900


def test_resume_refuses_other_options_and_other_sources(tmp_path):
    out = tmp_path / "s"
    proc = start_pack(SAMPLE, out, "--jobs", "1")
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = pack(SAMPLE, out, "--resume", "--crop", "256", check=1)
    assert "crop=224" in done.stderr and "crop=256" in done.stderr
    done = pack(REPO_SAMPLE, out, "--resume", check=1)
    assert "source listing" in done.stderr
    pack(SAMPLE, out, "--resume")
    pack(SAMPLE, out, "--resume")  # a complete store: nothing to do


def test_resume_is_also_the_first_run(tmp_path):
    """`pack --resume` where there is nothing to resume (no OUT_DIR, an
    empty one, a shard folder not made yet) packs from the start."""
    for out, options in ((tmp_path / "missing", ()),
                         (tmp_path / "empty", ()),
                         (tmp_path / "sharded", ("--shard", "1/2"))):
        if out.name == "empty":
            out.mkdir()
        done = run_imgpack("pack", "--resume", *options, REPO_SAMPLE, out,
                           check=0)
        store = out / "shard-1-of-2" if options else out
        assert f"imgpack: {store}: no pack to resume: starting a new pack" \
            in done.stderr, done.stderr
        assert "INCOMPLETE" not in run_imgpack("info", store, check=0).stdout
    # The next retry resumes the complete store, with nothing to say.
    done = run_imgpack("pack", "--resume", REPO_SAMPLE, tmp_path / "missing",
                       check=0)
    assert "no pack to resume" not in done.stderr


def test_resume_clears_a_pack_killed_while_starting(tmp_path, sample_pack,
                                                    open_store):
    """A pack dies before LMDB holds its header, the states a SIGKILL
    leaves: data.mdb created but empty, its environment without databases,
    or with its (empty) databases but no header; with or without a catalog
    begun. Nothing was committed: a resume clears it and packs it all."""
    import lmdb
    for stage, databases, catalog_file in (
            ("empty_file", None, False),
            ("no_databases", (), True),
            ("no_header", (b"records", b"meta"), True)):
        out = tmp_path / stage
        out.mkdir()
        if databases is None:
            (out / "data.mdb").touch()
        else:
            env = lmdb.open(str(out), max_dbs=2)
            for name in databases:
                env.open_db(name)
            env.close()
        if catalog_file:
            (out / "catalog.db").write_bytes(b"SQLite format 3\0")
            (out / "catalog.db-wal").write_bytes(b"")
        done = run_imgpack("pack", "--resume", SAMPLE, out, check=0)
        assert "stopped while starting, before it committed anything; " \
            "cleared it: starting a new pack" in done.stderr, done.stderr
        assert open_store(out).values() == open_store(sample_pack).values()
        assert catalog_rows(out) == catalog_rows(sample_pack)


def test_resume_leaves_another_lmdb_environment_alone(tmp_path):
    import lmdb
    out = tmp_path / "theirs"
    env = lmdb.open(str(out), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"someone's", b"data")
    env.close()
    before = (out / "data.mdb").read_bytes()
    done = pack(REPO_SAMPLE, out, "--resume", check=1)
    assert "not an imgpack store, left as it is" in done.stderr, done.stderr
    assert (out / "data.mdb").read_bytes() == before


def test_a_refused_resume_leaves_nothing_behind(tmp_path):
    """--resume --shard 1/2 where a whole store is (or the reverse) is
    refused without making a shard folder; so is a whole pack beside
    shards."""
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    pack(REPO_SAMPLE, whole)
    pack(REPO_SAMPLE, sharded, "--shard", "0/2")
    listing = sorted(p.name for p in whole.iterdir())
    for options in (("--resume",), ()):
        done = pack(REPO_SAMPLE, whole, *options, "--shard", "1/2", check=1)
        assert "holds a whole store (data.mdb), not shards" in done.stderr
        assert sorted(p.name for p in whole.iterdir()) == listing
        done = pack(REPO_SAMPLE, sharded, *options, check=1)
        assert "holds the shards of a sharded pack (shard-0-of-2)" in \
            done.stderr, done.stderr
        assert [p.name for p in sharded.iterdir()] == ["shard-0-of-2"]


def limit_file_size(limit):
    def preexec():
        # Writes past the limit fail with EFBIG instead of killing us.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_full_disk_is_a_clear_error_and_resume_finishes(tmp_path,
                                                        sample_pack,
                                                        open_store):
    out = tmp_path / "s"
    # 40 MiB: the first batch (at most 32 MiB of the sample's 45 MB)
    # commits and a later one cannot, so the resume goes on mid-pack.
    done = subprocess.run([IMGPACK, "pack", "--quiet", "--jobs", "2",
                           str(SAMPLE), str(out)], capture_output=True,
                          text=True, preexec_fn=limit_file_size(40 << 20))
    assert done.returncode == 1, done.stderr
    assert "file size limit" in done.stderr, done.stderr
    assert "INCOMPLETE" in run_imgpack("info", out, check=0).stdout
    assert 0 < committed(out) < 300
    pack(SAMPLE, out, "--resume")
    assert open_store(out).values() == open_store(sample_pack).values()
    assert catalog_rows(out) == catalog_rows(sample_pack)


def packed_in_summary(stdout):
    """N of the summary line 'packed N, rejected R, ...'."""
    line = next(l for l in stdout.splitlines() if l.startswith("packed "))
    return int(line.split()[1].rstrip(","))


def check_stopped_for_room(done, out, message):
    """A pack that ran out of room: exit 1, the documented message, and a
    summary that counts the records the store holds, not those handled."""
    assert done.returncode == 1, done.stderr
    assert message in done.stderr, done.stderr
    assert "database or disk is full" not in done.stderr.replace(
        "(COMMIT: database or disk is full)", "")
    info = run_imgpack("info", "--json", out)
    import json
    count = json.loads(info.stdout)["count"] if info.returncode in (0, 4) \
        else 0
    assert packed_in_summary(done.stdout) == count, (done.stdout, count)


def store_values(path):
    store = Store(str(path))
    try:
        return store.values()
    finally:
        store.close()


def room_sweep_then_resume(tmp_path, limits, run_limited):
    """Packs the bundled photos with each limit, which stops them at
    different places (creating LMDB, the catalog, a first or a later
    batch), then resumes without it: the result is an uninterrupted
    pack's."""
    whole = tmp_path / "whole"
    pack(REPO_SAMPLE, whole)
    for limit in limits:
        out = run_limited(limit)
        run_imgpack("pack", "--resume", REPO_SAMPLE, out, check=0)
        assert store_values(out) == store_values(whole), limit
        assert catalog_rows(out) == catalog_rows(whole)


def test_full_disk_at_every_stage(tmp_path):
    """A small tmpfs as the whole disk. SQLite's own 'database or disk is
    full' becomes the documented message too."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                            "tmpfs", str(mount)], capture_output=True)
    if tried.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + tried.stderr.decode())
    subprocess.run(["umount", str(mount)], check=True)

    def run_limited(size):
        if os.path.ismount(mount):  # the last size's, resumed and checked
            # Lazily: a catalog connection may not be collected yet.
            subprocess.run(["umount", "-l", str(mount)], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                        "tmpfs", str(mount)], check=True)
        out = mount / "out"
        done = subprocess.run([IMGPACK, "pack", "--jobs", "2",
                               str(REPO_SAMPLE), str(out)],
                              capture_output=True, text=True)
        check_stopped_for_room(done, out, "no space left on the device")
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)],
                       check=True)
        return out
    try:
        room_sweep_then_resume(tmp_path, ("48k", "200k", "1m", "3m"),
                               run_limited)
    finally:
        while os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=True)


def test_file_size_limit_at_every_stage(tmp_path):
    def run_limited(limit):
        out = tmp_path / f"limit_{limit}"
        done = subprocess.run([IMGPACK, "pack", "--jobs", "2",
                               str(REPO_SAMPLE), str(out)],
                              capture_output=True, text=True,
                              preexec_fn=limit_file_size(limit))
        check_stopped_for_room(done, out, "the file size limit (ulimit -f)")
        return out
    room_sweep_then_resume(tmp_path, (4 << 10, 16 << 10, 64 << 10,
                                      200 << 10, 3 << 20), run_limited)


READER = r"""
import sys, zlib
import imgpack
path, = sys.argv[1:]
seen = 0
while True:
    try:
        reader = imgpack.Reader(path, incomplete=True, verify=True)
        break
    except imgpack.ImgpackError:
        pass
with reader:
    while True:
        reader.refresh()
        count = len(reader)
        for i in range(seen, count):
            image, label = reader.image(i, copy=True)
            assert image.shape == (224, 224, 3) and label == i
        seen = count
        if reader.info["complete"]:
            break
print(seen)
"""


def test_reader_beside_a_running_pack_sees_whole_records(tmp_path):
    out = tmp_path / "s"
    proc = start_pack(SAMPLE, out, "--jobs", "1")
    reader = subprocess.run([sys.executable, "-c", READER, str(out)],
                            capture_output=True, text=True, timeout=300)
    assert proc.wait(timeout=300) == 0
    assert reader.returncode == 0, reader.stderr
    assert int(reader.stdout) == 300
