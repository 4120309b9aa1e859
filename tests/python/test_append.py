"""Appending to a finished store (pack --append): the appended store holds,
for every path, the record and label a fresh pack of all the files would
give it, while the store's own records and class ids stay as they were."""
import os

import numpy as np

from conftest import SAMPLE, catalog, pack, run_imgpack
from imgpack import Reader

# Classes left out of the first pack: from the middle of the name order,
# so that their appended ids (after the others) differ from a fresh
# pack's.
LEFT_OUT = slice(100, 110)


def linked_tree(root, classes):
    """An ImageFolder tree of symlinks to the sample's class folders."""
    root.mkdir()
    for name in classes:
        os.symlink(SAMPLE.resolve() / name, root / name)
    return root


def by_path(store):
    """{path: (pixels, class name)} of every record, and the class names."""
    with Reader(str(store)) as r:
        names = r.classes
        labels = r.labels()
        rows = catalog(store).execute("SELECT idx, path FROM images")
        return {path: (np.array(r.image(idx)[0]), names[labels[idx]])
                for idx, path in rows}, names


def test_append_equals_a_fresh_pack_by_path(tmp_path):
    classes = sorted(os.listdir(SAMPLE))
    first = classes[:LEFT_OUT.start] + classes[LEFT_OUT.stop:]
    part = linked_tree(tmp_path / "part", first)
    store = tmp_path / "store"
    pack(part, store, "--jobs", "2")
    before, before_names = by_path(store)
    with Reader(str(store)) as old_reader:
        old_labels = old_reader.labels()
        old_first = np.array(old_reader.image(0)[0])
        pack(SAMPLE, store, "--jobs", "2", "--append")
        # A reader opened before the append keeps its content.
        assert len(old_reader) == len(first)
        assert np.array_equal(old_reader.labels(), old_labels)
        assert np.array_equal(old_reader.image(0)[0], old_first)

    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout
    after, names = by_path(store)
    # The store's class ids and records stay; new classes come after them.
    assert names[:len(before_names)] == before_names
    assert names[len(before_names):] == classes[LEFT_OUT]
    with Reader(str(store)) as r:
        assert len(r) == len(classes)
        assert np.array_equal(r.labels()[:len(first)], old_labels)
    for path, (pixels, name) in before.items():
        assert np.array_equal(after[path][0], pixels) and \
            after[path][1] == name

    fresh = tmp_path / "fresh"
    pack(SAMPLE, fresh, "--jobs", "2")
    expected, _ = by_path(fresh)
    assert sorted(after) == sorted(expected)
    for path, (pixels, name) in expected.items():
        assert after[path][1] == name, path
        assert np.array_equal(after[path][0], pixels), path

    # Nothing left to add: a second append changes nothing.
    pack(SAMPLE, store, "--append")
    with Reader(str(store)) as r:
        assert len(r) == len(classes)
    db = catalog(store)
    assert db.execute("SELECT value FROM dataset WHERE key = 'appends'"
                      ).fetchone() == (2,)


def test_append_refuses_other_settings_and_unfinished_stores(tmp_path):
    part = linked_tree(tmp_path / "part", sorted(os.listdir(SAMPLE))[:5])
    store = tmp_path / "store"
    pack(part, store, "--resize", "64", "--crop", "0")
    done = pack(SAMPLE, store, "--append", "--resize", "32", "--crop", "0",
                check=1)
    assert "resize=64" in done.stderr and "resize=32" in done.stderr
    assert "append with the original options" in done.stderr
    done = pack(SAMPLE, tmp_path / "none", "--append", check=1)
    assert "--append" in done.stderr
    assert not (tmp_path / "none").exists()


def test_a_stopped_append_keeps_the_old_content_and_runs_again(tmp_path):
    """--strict stops the append at a broken file after earlier batches
    committed its first records: readers and verify still see the store
    as it was; run again without the file, the append finishes as a fresh
    pack would."""
    classes = sorted(os.listdir(SAMPLE))
    part = linked_tree(tmp_path / "part", classes[:20])
    store = tmp_path / "store"
    pack(part, store, "--resize", "32", "--crop", "0")
    src = linked_tree(tmp_path / "src", classes[:40])
    broken = tmp_path / "src" / "zzz-broken"
    broken.mkdir()
    (broken / "broken.JPEG").write_bytes(b"not a jpeg")
    done = pack(src, store, "--resize", "32", "--crop", "0", "--append",
                "--strict", check=1)
    assert "broken.JPEG" in done.stderr
    with Reader(str(store)) as r:
        assert len(r) == 20 and len(r.classes) == 20
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout
    assert "an append stopped (run it again); 20 catalog rows" in done.stdout

    (broken / "broken.JPEG").unlink()
    broken.rmdir()
    done = pack(src, store, "--resize", "32", "--crop", "0", "--append")
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout and "an append stopped" not in done.stdout
    assert catalog(store).execute(
        "SELECT value FROM dataset WHERE key = 'appends'").fetchone() == (1,)
    fresh = tmp_path / "fresh"
    pack(src, fresh, "--resize", "32", "--crop", "0")
    after, _ = by_path(store)
    expected, _ = by_path(fresh)
    assert sorted(after) == sorted(expected)
    for path, (pixels, name) in expected.items():
        assert after[path][1] == name and \
            np.array_equal(after[path][0], pixels), path


def test_an_append_stopped_before_its_first_record(tmp_path):
    """Stopped at its first file, an append has committed its classes and
    catalog rows but no record: verify still finds the store clean."""
    classes = sorted(os.listdir(SAMPLE))
    part = linked_tree(tmp_path / "part", classes[:5])
    store = tmp_path / "store"
    pack(part, store, "--resize", "32", "--crop", "0")
    src = linked_tree(tmp_path / "src", classes[:5])
    (src / "broken").mkdir()
    (src / "broken" / "broken.JPEG").write_bytes(b"not a jpeg")
    pack(src, store, "--resize", "32", "--crop", "0", "--append",
         "--strict", check=1)
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout and "an append stopped" in done.stdout
    with Reader(str(store)) as r:
        assert len(r) == 5 and len(r.classes) == 5
    (src / "broken" / "broken.JPEG").unlink()
    pack(src, store, "--resize", "32", "--crop", "0", "--append")
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout and "an append stopped" not in \
        done.stdout
    with Reader(str(store)) as r:
        assert r.classes == classes[:5] + ["broken"] and len(r) == 5


def test_an_append_killed_between_its_last_two_commits(tmp_path):
    """Killed after the append's last catalog transaction (new count and
    num_classes, every row) but before the LMDB one that publishes them:
    the catalog is ahead of the store, as a pack's may be by one batch, so
    verify finds nothing wrong, and running the append again finishes it.
    The state is built from two runs: a stopped append's store beside the
    catalog of the same append run to its end."""
    import shutil
    classes = sorted(os.listdir(SAMPLE))
    part = linked_tree(tmp_path / "part", classes[:20])
    store, finished = tmp_path / "store", tmp_path / "finished"
    pack(part, store, "--resize", "32", "--crop", "0")
    shutil.copytree(store, finished)
    src = linked_tree(tmp_path / "src", classes[:40])
    pack(src, finished, "--resize", "32", "--crop", "0", "--append")
    (src / "zzz-broken").mkdir()
    (src / "zzz-broken" / "broken.JPEG").write_bytes(b"not a jpeg")
    pack(src, store, "--resize", "32", "--crop", "0", "--append", "--strict",
         check=1)
    shutil.copyfile(finished / "catalog.db", store / "catalog.db")
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout and "an append stopped" in done.stdout
    with Reader(str(store)) as r:
        assert len(r) == 20 and len(r.classes) == 20
    shutil.rmtree(src / "zzz-broken")
    pack(src, store, "--resize", "32", "--crop", "0", "--append")
    done = run_imgpack("verify", store, check=0)
    assert "0 problems" in done.stdout and "an append stopped" not in \
        done.stdout
    after, _ = by_path(store)
    expected, _ = by_path(finished)
    assert sorted(after) == sorted(expected)
    for path, (pixels, name) in expected.items():
        assert after[path][1] == name and \
            np.array_equal(after[path][0], pixels), path
