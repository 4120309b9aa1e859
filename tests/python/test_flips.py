"""One flipped byte of data.mdb at a time, at random and aimed at LMDB's
own structure (meta pages, page headers, node offsets, node headers and
keys, overflow page numbers, named database records, branch pages;
lmdbpages.py finds them), in stores of the bundled sample: raw 224x224
and jpeg records (in overflow pages), and raw 16x16 ones (800-byte values
inside leaf pages, so the records' tree has a branch level).

After each flip, tests/tools/flip_read reads the store as a trainer does
(open with the default checks, labels, every record, one batch) and
`imgpack verify` checks it. Asserted for every flip:
- flip_read never crashes outside liblmdb. A crash inside liblmdb (LMDB
  keeps no page checksums, and follows a damaged node offset unchecked) is
  tolerated, and counted in the summary this test prints;
- everything flip_read is served with success equals the undamaged
  store's: damage comes back as an error, never as data;
- verify exits 0, 1 or 4, never by a signal, and not 0 when flip_read saw
  anything differ.

IMGPACK_FLIPS sets the flips per store (default 120, half random, half
aimed; a quarter of that under AddressSanitizer, which is slower);
IMGPACK_FLIP_SEED the seed (default: a fixed one, so a failure repeats).
"""
import os
import random
import shutil
import subprocess

import pytest

from conftest import IMGPACK, REPO_SAMPLE, pack
from lmdbpages import structure

TOOLS = os.environ.get("IMGPACK_TEST_TOOLS", "build/tests")
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
FLIPS = int(os.environ.get("IMGPACK_FLIPS", "0")) or (30 if ASAN else 120)
SEED = int(os.environ.get("IMGPACK_FLIP_SEED", "14"))
CRASH_EXIT = 70

# The faults the test provokes must reach the processes' own handlers (or
# kill them), not be turned into AddressSanitizer reports.
ENV = dict(os.environ)
ENV["ASAN_OPTIONS"] = ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""), "handle_segv=0", "handle_sigbus=0"]))


def read_all(store):
    """flip_read's exit status and {what: (status, hash)}, plus its crash
    line if it crashed."""
    done = subprocess.run([os.path.join(TOOLS, "flip_read"), str(store)],
                          capture_output=True, text=True, env=ENV,
                          timeout=60)
    served, crash = {}, None
    for line in done.stdout.splitlines():
        fields = line.split()
        if fields[0] == "crash":
            crash = line
        elif fields[0] == "record":
            served["record " + fields[1]] = tuple(fields[2:])
        else:
            served[fields[0]] = tuple(fields[1:])
    return done.returncode, served, crash, done.stderr


def verify(store):
    return subprocess.run([IMGPACK, "verify", str(store)],
                          capture_output=True, text=True, env=ENV,
                          errors="replace", timeout=60)


def targets(data, rng, n):
    """n offsets into `data`: half uniformly random, half aimed at LMDB's
    structure, each kind of structure in turn."""
    kinds = {k: v for k, v in structure(data).items() if v}
    names = sorted(kinds)
    out = [("random", rng.randrange(len(data))) for _ in range(n - n // 2)]
    out += [(names[i % len(names)], rng.choice(kinds[names[i % len(names)]]))
            for i in range(n // 2)]
    return out


STORES = {"raw": ["--format", "raw"], "jpeg": ["--format", "jpeg"],
          "tiny": ["--resize", "16", "--crop", "16"]}


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_flipped_bytes(tmp_path, fmt):
    store = tmp_path / fmt
    pack(REPO_SAMPLE, store, *STORES[fmt])
    rc, pristine, crash, _ = read_all(store)
    assert rc == 0 and crash is None
    assert all(status == "0" for status, *_ in pristine.values()), pristine
    assert len(pristine) == 24 + 3
    data = (store / "data.mdb").read_bytes()
    rng = random.Random(SEED)
    work = tmp_path / "work"
    failures, lmdb_crashes, caught, harmless = [], [], 0, 0
    for kind, at in targets(data, rng, FLIPS):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        shutil.copy(store / "catalog.db", work / "catalog.db")
        damaged = bytearray(data)
        damaged[at] ^= rng.randrange(1, 256)
        (work / "data.mdb").write_bytes(damaged)
        what = f"{fmt} {kind} flip at byte {at} (page {at // 4096}, " \
               f"offset {at % 4096})"

        rc, served, crash, stderr = read_all(work)
        if crash is not None:
            if "liblmdb" in crash:
                lmdb_crashes.append(f"{what}: {crash}")
            else:
                failures.append(f"{what}: reader crashed outside liblmdb: "
                                f"{crash}")
        elif rc != 0:
            failures.append(f"{what}: reader exited {rc}: {stderr[-500:]}")
        for key, (status, *rest) in served.items():
            if status == "0" and (key not in pristine or
                                  pristine[key] != (status, *rest)):
                failures.append(f"{what}: {key} served wrong data as "
                                f"success")
        differs = crash is not None or served != pristine

        done = verify(work)
        if done.returncode not in (0, 1, 4):
            failures.append(f"{what}: verify exited {done.returncode}: "
                            f"{done.stdout[-300:]}{done.stderr[-300:]}")
        elif differs and done.returncode == 0:
            failures.append(f"{what}: the reader saw damage, verify "
                            f"reported none")
        if differs:
            caught += 1
        elif done.returncode == 0:
            harmless += 1
    print(f"\n{fmt}: {FLIPS} flips (seed {SEED}): {caught} served as errors, "
          f"{harmless} harmless, {len(lmdb_crashes)} crashes inside liblmdb")
    for line in lmdb_crashes:
        print("  tolerated:", line)
    assert not failures, "\n".join(failures[:20])
