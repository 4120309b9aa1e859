"""Tar archives read in place: ImageNet's tar of per-class tars and plain
tars pack exactly as their extracted trees do; damage is a reject."""
import gzip
import io
import os
import shutil
import tarfile

from conftest import SAMPLE, catalog, pack
from storefile import Store

ROWS = ("SELECT idx, class_id, src_width, src_height, src_bytes, stored_bytes,"
        " sha256 FROM images ORDER BY idx")


def values(path):
    store = Store(path)
    out = [v for _, v in store.values()]
    store.close()
    return out


def tar_of_tars(path, root):
    """The ILSVRC2012_img_train.tar layout: one <class>.tar per class."""
    with tarfile.open(path, "w") as outer:
        for name in sorted(os.listdir(root)):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                for f in sorted(os.listdir(root / name)):
                    t.add(root / name / f, arcname=f)
            info = tarfile.TarInfo(f"{name}.tar")
            info.size = inner.tell()
            inner.seek(0)
            outer.addfile(info, inner)


def test_tar_of_tars_packs_like_the_extracted_tree(tmp_path, sample_pack):
    archive = tmp_path / "train.tar"
    tar_of_tars(archive, SAMPLE)
    pack(archive, tmp_path / "s", "--jobs", "2")
    assert values(tmp_path / "s") == values(sample_pack)
    assert catalog(tmp_path / "s").execute(ROWS).fetchall() == \
        catalog(sample_pack).execute(ROWS).fetchall()
    first = catalog(tmp_path / "s").execute(
        "SELECT path FROM images WHERE idx = 0").fetchone()[0]
    name = sorted(os.listdir(SAMPLE))[0]
    assert first == f"{name}.tar/{os.listdir(SAMPLE / name)[0]}"


def test_plain_tar_with_nested_directories(tmp_path):
    photos = sorted(SAMPLE.glob("*/*.JPEG"))
    tree = tmp_path / "tree"
    for photo, name in zip(photos, ["b/z.jpg", "b/sub/y.jpg", "b/a b/x.jpg",
                                    "a/w.png", "a/notes.txt", "c/v.jpeg"]):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, tree / name)
    with tarfile.open(tmp_path / "t.tar", "w") as t:
        for name in ("c", "b", "a"):  # not in sorted order on purpose
            t.add(tree / name, arcname=name)
    pack(tree, tmp_path / "folder")
    pack(tmp_path / "t.tar", tmp_path / "tar")
    assert values(tmp_path / "tar") == values(tmp_path / "folder")
    assert catalog(tmp_path / "tar").execute(
        "SELECT path FROM images ORDER BY idx").fetchall() == catalog(
        tmp_path / "folder").execute(
        "SELECT path FROM images ORDER BY idx").fetchall()
    assert dict(catalog(tmp_path / "tar").execute(
        "SELECT key, value FROM dataset"))["skipped"] == 1


def test_a_truncated_archive_packs_what_it_could_read(tmp_path, sample_pack):
    archive = tmp_path / "train.tar"
    tar_of_tars(archive, SAMPLE)
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) // 2])
    done = pack(cut, tmp_path / "s", check=3)
    assert "archive cut short in" in done.stderr
    packed = values(tmp_path / "s")
    assert 0 < len(packed) < 300
    assert packed == values(sample_pack)[:len(packed)]
    reasons = [r for r, in catalog(tmp_path / "s").execute(
        "SELECT reason FROM rejects")]
    assert len(reasons) == 1 and reasons[0].startswith("archive cut short")


def test_compressed_tar_of_tars_streams_like_the_folder(tmp_path,
                                                       sample_pack):
    plain = tmp_path / "train.tar"
    tar_of_tars(plain, SAMPLE)
    packed = tmp_path / "train.tar.gz"
    with open(plain, "rb") as f, gzip.open(packed, "wb", compresslevel=1) as g:
        shutil.copyfileobj(f, g)
    pack(packed, tmp_path / "s", "--jobs", "2")
    assert values(tmp_path / "s") == values(sample_pack)
    assert catalog(tmp_path / "s").execute(ROWS).fetchall() == \
        catalog(sample_pack).execute(ROWS).fetchall()


def test_compressed_tar_out_of_order_and_cut_short(tmp_path):
    photos = sorted(SAMPLE.glob("*/*.JPEG"))[:30]
    tree = tmp_path / "tree"
    for photo in photos:
        (tree / photo.parent.name).mkdir(parents=True)
        shutil.copy(photo, tree / photo.parent.name / photo.name)
    archive = tmp_path / "t.tar.xz"
    with tarfile.open(archive, "w:xz") as t:
        for photo in reversed(photos):  # the opposite of the packing order
            t.add(photo, arcname=f"{photo.parent.name}/{photo.name}")
    pack(tree, tmp_path / "folder")
    pack(archive, tmp_path / "xz")
    assert values(tmp_path / "xz") == values(tmp_path / "folder")
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(data[:len(data) // 2])
    done = pack(cut, tmp_path / "cut", check=3)
    assert "archive damaged" in done.stderr
    assert len(values(tmp_path / "cut")) < 30
