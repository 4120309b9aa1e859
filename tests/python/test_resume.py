"""Interrupted packs: SIGKILL at random moments, a full disk, a reader
beside the writer. The finished store must equal an uninterrupted pack's."""
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

from conftest import (IMGPACK, REPO_SAMPLE, SAMPLE, catalog, pack,
                      run_imgpack)

# Bounded: at most this many kills, each within the first KILL_WINDOW s
# of a run (a whole pack of the sample takes about half a second).
MAX_KILLS = 10
KILL_WINDOW = 0.12
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
    resume = ["--resume"] if (out / "data.mdb").exists() else []
    return subprocess.Popen([IMGPACK, "pack", "--quiet", *resume, *options,
                             str(src), str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_at_random_moments_then_resume(tmp_path, sample_pack,
                                               open_store):
    out = tmp_path / "killed"
    rng = random.Random(20261126)
    kills = 0
    while True:
        proc = start_pack(SAMPLE, out, "--jobs", "2")
        if kills < MAX_KILLS:
            time.sleep(rng.uniform(0.005, KILL_WINDOW))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        stderr = proc.communicate(timeout=120)[1]
        if proc.returncode == 0:
            break
        if proc.returncode == 1 and "holds no imgpack header" in stderr:
            shutil.rmtree(out)  # killed while starting, as the message says
            continue
        assert proc.returncode == -signal.SIGKILL, stderr
    assert kills >= 3
    assert open_store(out).values() == open_store(sample_pack).values()
    assert open_store(out).meta("labels") == open_store(sample_pack).meta(
        "labels")
    assert catalog_rows(out) == catalog_rows(sample_pack)


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


def test_resume_of_a_pack_killed_while_starting_says_so(tmp_path):
    """A pack dies before LMDB holds its header: after creating data.mdb
    but before its databases, or after them but before the header. Either
    way nothing was packed, and a resume says so instead of guessing."""
    import lmdb
    for stage, databases in (("no_databases", ()),
                             ("no_header", (b"records", b"meta"))):
        out = tmp_path / stage
        out.mkdir()
        env = lmdb.open(str(out), max_dbs=2)
        for name in databases:
            env.open_db(name)
        env.close()
        done = pack(SAMPLE, out, "--resume", check=1)
        assert "holds no imgpack header" in done.stderr, done.stderr
        assert "remove it and pack again" in done.stderr


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
