"""Sources beyond the ImageFolder walk: list files (Caffe's and ImageNet's
Kaggle CSV), --classes-from, --sort and --sha256 verification."""
import hashlib
import os
import shutil

import numpy as np

from conftest import SAMPLE, catalog, pack, reference, run_imgpack
from storefile import Store

CLASSES = sorted(os.listdir(SAMPLE))


def photo(name):
    return next((SAMPLE / name).iterdir())


def kaggle_tree(tmp_path, names):
    """A flat val folder and its LOC_val_solution.csv, ImageNet-style."""
    src = tmp_path / "val"
    src.mkdir()
    rows = ["ImageId,PredictionString"]
    for i, name in enumerate(names):
        image_id = f"ILSVRC2012_val_{i:08d}"
        shutil.copy(photo(name if name in CLASSES else CLASSES[0]),
                    src / f"{image_id}.JPEG")
        rows.append(f"{image_id},{name} 1 2 3 4 {name} 5 6 7 8")
    (src / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return src


def test_kaggle_csv_with_the_training_class_table(tmp_path, sample_pack):
    names = [CLASSES[7], CLASSES[3], "n00000000", CLASSES[299], CLASSES[3]]
    src = kaggle_tree(tmp_path, names)
    out = tmp_path / "s"
    done = pack(src, out, "--list", src / "LOC_val_solution.csv",
                "--classes-from", sample_pack, check=3)
    assert "ILSVRC2012_val_00000002.JPEG: class 'n00000000' is not in the " \
           "class table" in done.stderr
    db = catalog(out)
    assert db.execute("SELECT COUNT(*) FROM classes").fetchone() == (300,)
    rows = db.execute("SELECT idx, class_id, path FROM images ORDER BY idx"
                      ).fetchall()
    kept = [(i, n) for i, n in enumerate(names) if n in CLASSES]
    assert [(c, p) for _, c, p in rows] == [
        (CLASSES.index(n), f"ILSVRC2012_val_{i:08d}.JPEG") for i, n in kept]
    store = Store(out)
    for idx, class_id, path in rows:
        record = store.record(idx)
        assert record.label == class_id
        assert np.array_equal(record.pixels(), reference(src / path))
    store.close()
    assert db.execute("SELECT path, class_id FROM rejects").fetchall() == [
        ("ILSVRC2012_val_00000002.JPEG", None)]


def test_caffe_list_with_ids_names_order_and_missing_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(CLASSES[:4]):
        shutil.copy(photo(name), src / f"img {i}.jpg")
    (src / "ids.txt").write_text("img 2.jpg 1\nimg 0.jpg 0\ngone.jpg 1\n"
                                 "img 1.jpg\t2\n")
    done = pack(src, tmp_path / "ids", "--list", src / "ids.txt", check=3)
    assert "gone.jpg: cannot open" in done.stderr
    db = catalog(tmp_path / "ids")
    assert db.execute("SELECT path, class_id FROM images ORDER BY idx"
                      ).fetchall() == [("img 2.jpg", 1), ("img 0.jpg", 0),
                                       ("img 1.jpg", 2)]
    assert [n for n, in db.execute("SELECT name FROM classes")] == [
        "0", "1", "2"]
    (src / "names.txt").write_text("img 3.jpg zebra\nimg 1.jpg ant\n"
                                   "img 0.jpg zebra\n")
    pack(src, tmp_path / "names", "--list", src / "names.txt", "--sort")
    db = catalog(tmp_path / "names")
    assert db.execute("SELECT path, class_id FROM images ORDER BY idx"
                      ).fetchall() == [("img 0.jpg", 1), ("img 1.jpg", 0),
                                       ("img 3.jpg", 1)]
    assert db.execute("SELECT name, num_images FROM classes ORDER BY class_id"
                      ).fetchall() == [("ant", 1), ("zebra", 2)]
    (src / "bad.txt").write_text("no-label-here\n")
    done = pack(src, tmp_path / "bad", "--list", src / "bad.txt", check=1)
    assert "bad.txt: line 1" in done.stderr


def test_folder_pack_against_another_class_table(tmp_path, sample_pack):
    src = tmp_path / "src"
    for name in (CLASSES[10], CLASSES[2], "not-a-class"):
        (src / name).mkdir(parents=True)
        shutil.copy(photo(CLASSES[10]), src / name / "a.jpg")
    pack(src, tmp_path / "s", "--classes-from", sample_pack, check=3)
    db = catalog(tmp_path / "s")
    assert db.execute("SELECT path, class_id FROM images ORDER BY idx"
                      ).fetchall() == [(f"{CLASSES[2]}/a.jpg", 2),
                                       (f"{CLASSES[10]}/a.jpg", 10)]
    assert [r for r, in db.execute("SELECT reason FROM rejects")] == [
        f"class 'not-a-class' is not in the class table of {sample_pack}"]


def test_sha256_sums_are_checked_before_anything_is_written(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    files = [photo(CLASSES[0]), photo(CLASSES[1])]
    lines = []
    for f in files:
        shutil.copy(f, src / "a" / f.name)
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        lines.append(f"{digest}  a/{f.name}")
    sums = src / "SHA256SUMS"
    sums.write_text("\n".join(lines) + "\n")
    pack(src, tmp_path / "ok", "--sha256", sums)
    with open(src / "a" / files[1].name, "r+b") as f:
        f.seek(1000)
        f.write(b"\0")
    done = pack(src, tmp_path / "bad", "--sha256", sums, check=1)
    assert f"a/{files[1].name}: SHA-256 is" in done.stderr
    assert not (tmp_path / "bad").exists()
    sums.write_text(lines[0] + "\n" + "0" * 64 + "  a/missing.jpg\n")
    done = pack(src, tmp_path / "gone", "--sha256", sums, check=1)
    assert "a/missing.jpg" in done.stderr
    assert run_imgpack("pack", "--sort", src, tmp_path / "x",
                       check=2).stderr
