"""imgpack verify: a sound store passes; each kind of damage is named.

Damage is done the way it happens: bytes flipped inside data.mdb (found by
searching the file for a record's payload: records are ~150 KB values, so
LMDB keeps each in contiguous overflow pages), rows deleted from the
catalog, metadata rewritten, source files changed after packing.
"""
import os
import shutil
import sqlite3
import struct
import subprocess

import lmdb
import pytest

from conftest import IMGPACK, REPO_SAMPLE, pack, run_imgpack
from storefile import meta_checksum

PROBLEMS = 4


def verify(store, *options, check):
    return run_imgpack("verify", *options, store, check=check)


def problem_lines(done):
    """Problem lines: everything but the summary, which comes last."""
    return done.stdout.splitlines()[:-1]


@pytest.fixture
def sources(tmp_path):
    return shutil.copytree(REPO_SAMPLE, tmp_path / "src")


@pytest.fixture
def store(sources, tmp_path):
    out = tmp_path / "store"
    pack(sources, out, "--jobs", "2")
    return out


def raw_value(store, index):
    env = lmdb.open(str(store), readonly=True, lock=False, max_dbs=2)
    try:
        with env.begin() as txn:
            db = env.open_db(b"records", txn=txn, create=False)
            return bytes(txn.get(struct.pack(">Q", index), db=db))
    finally:
        env.close()


def flip_payload_bytes(store, index):
    """Inverts 16 bytes in the middle of record `index`'s payload, in place
    in data.mdb."""
    value = raw_value(store, index)
    probe = value[len(value) // 2:len(value) // 2 + 4096]
    path = store / "data.mdb"
    data = bytearray(path.read_bytes())
    at = data.find(probe)
    assert at >= 0 and data.find(probe, at + 1) < 0, "probe is not unique"
    for i in range(at + 100, at + 116):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_meta(store, key, value, checksum=True):
    """Sets meta `key`; with `checksum`, its checksum too, as a forger (or
    an older imgpack's resume) would, so only deeper checks can tell."""
    env = lmdb.open(str(store), max_dbs=2)
    try:
        with env.begin(write=True) as txn:
            db = env.open_db(b"meta", txn=txn, create=False)
            txn.put(key, value, db=db)
            if checksum:
                txn.put(b"crc/" + key, meta_checksum(key, value), db=db)
    finally:
        env.close()


def edit_catalog(store, *statements):
    db = sqlite3.connect(store / "catalog.db")
    with db:
        for sql in statements:
            db.execute(sql)
    db.close()


def test_a_sound_store_passes(store, sources):
    done = verify(store, "--sources", sources, check=0)
    assert problem_lines(done) == []
    assert done.stdout.splitlines()[-1].endswith(
        "24 records, 24 classes: 0 problems")


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_compressed_stores_pass(sources, tmp_path, fmt):
    out = tmp_path / fmt
    pack(sources, out, "--format", fmt)
    verify(out, check=0)


def test_flipped_payload_bytes_name_the_records(store):
    flip_payload_bytes(store, 5)
    flip_payload_bytes(store, 17)
    done = verify(store, check=PROBLEMS)
    lines = problem_lines(done)
    assert [line.split(":")[0] for line in lines] == ["record 5", "record 17"]
    assert all("payload checksum" in line for line in lines), lines
    assert done.stdout.splitlines()[-1].endswith("2 problems")


def test_flipped_bytes_in_a_jpeg_payload_are_found(sources, tmp_path):
    out = tmp_path / "jpeg"
    pack(sources, out, "--format", "jpeg")
    flip_payload_bytes(out, 9)
    done = verify(out, check=PROBLEMS)
    assert problem_lines(done)[0].startswith("record 9: ")


def test_deleted_catalog_rows_are_named(store):
    edit_catalog(store, "DELETE FROM images WHERE idx IN (3, 20)")
    done = verify(store, check=PROBLEMS)
    lines = problem_lines(done)
    assert "record 3: no row in the catalog's images table" in lines
    assert "record 20: no row in the catalog's images table" in lines
    # Their classes now count images that have no row.
    assert sum(line.startswith("catalog: class ") for line in lines) == 2


def test_catalog_disagreements_are_named(store):
    edit_catalog(store,
                 "UPDATE images SET class_id = 0 WHERE idx = 4",
                 "UPDATE images SET stored_bytes = 1 WHERE idx = 6",
                 "INSERT INTO images (idx, class_id, path) VALUES (24, 0, 'x')",
                 "DELETE FROM classes WHERE class_id = 23")
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert any(line.startswith("record 4: catalog class_id 0") for line in lines)
    assert any(line.startswith("record 6: catalog stored_bytes 1,")
               for line in lines)
    assert any("images row 24 is past" in line for line in lines)
    assert "catalog: class 23 has no row in classes" in lines


def test_labels_metadata_must_match_the_records(store):
    labels = bytearray(raw_value_meta(store, b"labels"))
    labels[8:12] = struct.pack("<I", 0)  # record 2 is in class 2
    rewrite_meta(store, b"labels", bytes(labels))
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert len(lines) == 1
    assert lines[0].startswith("record 2: ")
    assert lines[0].endswith("label 2, the labels metadata says 0")


@pytest.mark.parametrize("key", [b"labels", b"source_digest",
                                 b"settings", b"tool_version"])
def test_damaged_metadata_values_fail_their_checksums(store, key):
    value = bytearray(raw_value_meta(store, key))
    value[len(value) // 2] ^= 0x20
    rewrite_meta(store, key, bytes(value), checksum=False)
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert any(f'metadata "{key.decode()}" fails its checksum' in line
               for line in lines), lines


def test_a_damaged_key_name_shows_twice(store):
    # "source_digest" renamed by a flipped bit: its value has no checksum
    # any more, and its checksum no value.
    env = lmdb.open(str(store), max_dbs=2)
    with env.begin(write=True) as txn:
        db = env.open_db(b"meta", txn=txn, create=False)
        value = txn.get(b"source_digest", db=db)
        txn.delete(b"source_digest", db=db)
        txn.put(b"sourcd_digest", value, db=db)
    env.close()
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert any('"sourcd_digest" fails its checksum' in line
               for line in lines), lines
    assert any('"crc/source_digest" is a checksum without its value'
               in line for line in lines), lines


def raw_value_meta(store, key):
    env = lmdb.open(str(store), readonly=True, lock=False, max_dbs=2)
    try:
        with env.begin() as txn:
            db = env.open_db(b"meta", txn=txn, create=False)
            return bytes(txn.get(key, db=db))
    finally:
        env.close()


def test_a_damaged_catalog_file_is_a_problem(store):
    path = store / "catalog.db"
    data = bytearray(path.read_bytes())
    # Page 2 onwards holds table contents; garbage there breaks the b-trees.
    page = 4096
    data[page:page + 512] = bytes(512)
    path.write_bytes(bytes(data))
    done = verify(store, check=PROBLEMS)
    assert any(line.startswith("catalog: ") for line in problem_lines(done))


def test_an_incomplete_store_is_reported_as_incomplete(store):
    # What a pack stopped after its last LMDB commit leaves: state
    # "packing", and the catalog one batch ahead.
    rewrite_meta(store, b"state", b"packing")
    edit_catalog(store,
                 "UPDATE dataset SET value = 'packing' WHERE key = 'state'",
                 "INSERT INTO images (idx, class_id, path) VALUES (24, 0, 'x')",
                 "UPDATE classes SET num_images = num_images + 1"
                 " WHERE class_id = 0")
    done = verify(store, check=PROBLEMS)
    assert problem_lines(done) == [
        "store: incomplete: the pack stopped after 24 records; 1 catalog "
        "rows past them are ignored"]
    assert done.stdout.splitlines()[-1].endswith("incomplete: 0 problems")


def test_sources_detect_changed_and_missing_files(store, sources):
    rows = dict(sqlite3.connect(store / "catalog.db").execute(
        "SELECT idx, path FROM images"))
    changed = sources / rows[11]
    changed.write_bytes(changed.read_bytes() + b"\0")
    (sources / rows[13]).unlink()
    lines = problem_lines(verify(store, "--sources", sources, check=PROBLEMS))
    assert len(lines) == 2
    assert lines[0].startswith(f"record 11: source {changed} has changed")
    assert lines[1].startswith("record 13: source ")
    assert lines[1].endswith("No such file or directory")


@pytest.mark.parametrize("edit", [
    "UPDATE images SET path = 'n01/elsewhere.JPEG' WHERE idx = 7",
    "UPDATE images SET sha256 = '%s' WHERE idx = 7" % ("0" * 64),
])
def test_edited_catalog_rows_are_found_without_sources(store, edit):
    edit_catalog(store, edit)
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert len(lines) == 1, lines
    assert lines[0].startswith("catalog: the images rows are not the ones "
                               "packed")


def test_duplicated_paths_are_named(store):
    rows = dict(sqlite3.connect(store / "catalog.db").execute(
        "SELECT idx, path FROM images"))
    edit_catalog(store, "UPDATE images SET path = '%s' WHERE idx = 9"
                 % rows[3].replace("'", "''"))
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert f"catalog: path {rows[3]} is in 2 images rows (from record 3)" \
        in lines, lines


@pytest.mark.parametrize("key,value,expect", [
    ("state", "packing", 'dataset state is "packing", the store says '
                         '"complete"'),
    ("format", "jpeg", 'dataset format is "jpeg", the store says "raw"'),
    ("num_classes", "23", 'dataset num_classes is "23", the store says "24"'),
    ("crop", "256", 'dataset crop is "256", the store says "224"'),
    ("quality", "75", 'dataset quality is "75", the store says "90"'),
    ("count", None, "dataset has no count"),
    ("source", None, "dataset has no source"),
    ("max_pixels", None, "dataset has no max_pixels"),
    ("created", "2001-01-01T00:00:00Z",
     "dataset source, command, created or skipped is not what was packed "
     "(the store's catalog_dataset_digest disagrees)"),
    ("skipped", "7",
     "dataset source, command, created or skipped is not what was packed "
     "(the store's catalog_dataset_digest disagrees)"),
])
def test_edited_or_deleted_dataset_keys_are_named(store, key, value, expect):
    if value is None:
        edit_catalog(store, f"DELETE FROM dataset WHERE key = '{key}'")
    else:
        edit_catalog(store,
                     f"UPDATE dataset SET value = '{value}' WHERE key = '{key}'")
    lines = problem_lines(verify(store, check=PROBLEMS))
    assert lines == ["catalog: " + expect], lines


def test_a_crash_inside_lmdb_is_reported(store):
    # A node offset in the metadata's leaf pointed past the end of
    # data.mdb: liblmdb's own search reads there and faults (SIGBUS).
    from lmdbpages import point_past_the_file
    point_past_the_file(store / "data.mdb", b"meta")
    # Under AddressSanitizer the fault must kill the child, not become a
    # sanitizer report.
    env = dict(os.environ, ASAN_OPTIONS=":".join(filter(None, [
        os.environ.get("ASAN_OPTIONS", ""), "handle_segv=0",
        "handle_sigbus=0"])))
    done = subprocess.run([IMGPACK, "verify", str(store)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == PROBLEMS, done.stdout + done.stderr
    lines = problem_lines(done)
    assert len(lines) == 1 and lines[0].startswith(
        "store: LMDB structure damaged (the check was killed by signal 7, "
        "Bus error, while "), lines
    assert done.stdout.splitlines()[-1].endswith("1 problem")


def test_misuse_and_missing_stores(tmp_path):
    assert run_imgpack("verify").returncode == 2
    assert run_imgpack("verify", "--help", check=0).stdout.startswith(
        "Usage: imgpack verify")
    done = run_imgpack("verify", tmp_path / "nothing", check=1)
    assert "nothing" in done.stderr


def test_python_verify_gives_the_cli_lines(store, sources):
    import imgpack
    assert imgpack.verify(store, sources=sources) == []
    flip_payload_bytes(store, 5)
    edit_catalog(store, "DELETE FROM images WHERE idx = 20")
    found = imgpack.verify(store)
    # The same findings as the command prints, in its order, with kinds
    # and record indices as data.
    assert [p.message for p in found] == problem_lines(
        verify(store, check=PROBLEMS))
    assert found[0].kind == "record" and found[0].record == 5
    assert "record 20: no row in the catalog's images table" in [
        p.message for p in found if p.kind == "catalog" and p.record == 20]
    with pytest.raises(imgpack.ImgpackError):
        imgpack.verify(store.parent / "nothing")
