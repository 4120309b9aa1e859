"""Subsets without repacking: imgpack.select and `imgpack select` against
sqlite3 run directly on the catalog, the refusal of anything but one
read-only expression, bound parameters, the index-list file, sharded
packs, and Dataset (indices=) and Loader (subset=) over a subset,
relabel=."""
import hashlib
import pickle
import re
import shutil
import sqlite3

import numpy as np
import pytest

import imgpack
from conftest import REPO_SAMPLE, catalog, pack, run_imgpack

QUERY = ("SELECT images.idx FROM images JOIN classes USING (class_id) "
         "WHERE ({}) ORDER BY images.idx")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The bundled 24-image sample, small records: fast to pack."""
    out = tmp_path_factory.mktemp("select") / "store"
    pack(REPO_SAMPLE, out, "--resize", "40", "--crop", "32", "--jobs", "2")
    return out


def direct(store_dir, where, params=()):
    db = catalog(store_dir)
    try:
        return [i for i, in db.execute(QUERY.format(where), params)]
    finally:
        db.close()


@pytest.mark.parametrize("where, params", [
    ("classes.name IN ('n01440764', 'n02007558', 'n04597913')", ()),
    ("min(src_width, src_height) >= ?", (400,)),
    ("src_width * 2 > ?", (1000,)),
    ("idx % 3 = 0", ()),
    ("path LIKE ? AND class_id < :last", ("%_c%", 20)),
    ("class_id IN (SELECT class_id FROM classes ORDER BY name DESC LIMIT 5)",
     ()),
    ("name IN (SELECT value FROM json_each(?))",
     ('["n02396427", "n03384352"]',)),
    ("0", ()),
    ("1 -- every record\n", ()),
])
def test_select_matches_sqlite(store, where, params):
    expected = direct(store, where, params)
    got = imgpack.select(store, where, params)
    assert got.dtype == np.uint64 and got.tolist() == expected
    if where not in ("0", "1 -- every record\n"):
        assert 0 < len(expected) < 24  # the filter does filter
    args = [a for p in params for a in ("--param", p)]
    done = run_imgpack("select", store, where, *args, check=0)
    assert done.stdout == "".join(f"{i}\n" for i in expected)
    count = run_imgpack("select", "--count", store, where, *args, check=0)
    assert count.stdout == f"{len(expected)}\n"


def test_parameters_are_bound_not_spliced(store):
    quote = "n01440764' OR '1'='1"
    assert imgpack.select(store, "name = ?", [quote]).size == 0
    assert imgpack.select(store, "name = ?", ["n01440764"]).tolist() == \
        direct(store, "name = 'n01440764'")
    with pytest.raises(imgpack.ImgpackError, match="2 parameter.*1 value"):
        imgpack.select(store, "idx > ? AND idx < ?", [3])
    with pytest.raises(imgpack.ImgpackError, match="0 parameter.*1 value"):
        imgpack.select(store, "idx > 3", [3])
    with pytest.raises(TypeError, match="sequence"):
        imgpack.select(store, "name = :n", {"n": "n01440764"})
    # The message is the last call's: "" once a call succeeds.
    reader = imgpack.Reader(store)
    with pytest.raises(imgpack.ImgpackError):
        imgpack.select(reader, "idx >", [])
    assert imgpack.select(reader, "idx < ?", [2]).tolist() == [0, 1]
    assert reader._errmsg() == ""
    reader.close()
    # Numbers bind as numbers where printf would write them so; the rest
    # (leading zeros, exponents, spaces) stays text.
    for value, kind in ((12, "integer"), ("12", "integer"), (0.1, "real"),
                        (2.5, "real"), ("2.5", "real"), (3.0, "integer"),
                        ("007", "text"), ("1e3", "text"), ("nan", "text"), ("inf", "text"),
                        (" 5", "text"), ("n01440764", "text")):
        got = imgpack.select(store, "typeof(?) = ?", [value, kind])
        assert got.size == 24, (value, kind)
    done = run_imgpack("select", store, "idx < ?", check=1)
    assert "1 parameter(s) but 0 value(s)" in done.stderr


REFUSED = [
    ("1); DELETE FROM images; SELECT (1", "closes more than"),
    ("idx = 1; DROP TABLE images", "';' ends the statement"),
    ("1) UNION SELECT 5 /*", "closes more than"),
    ("(1", "'(' is not closed"),
    ("1 /* open", "comment does not end"),
    ("name = 'open", "does not end"),
    ("1); ATTACH 'x.db' AS x; --", "closes more than"),
    ("load_extension('/tmp/x.so') IS NULL", "load_extension is not allowed"),
    ("idx IN (SELECT cid FROM pragma_table_info('images'))",
     "PRAGMA is not allowed"),
    ("nosuch > 1", "no such column: nosuch"),
    ("idx >", "syntax error"),
]


@pytest.mark.parametrize("where, reason", REFUSED)
def test_refuses_anything_but_one_read_only_expression(tmp_path, store,
                                                        where, reason):
    before = hashlib.sha256((store / "catalog.db").read_bytes()).digest()
    with pytest.raises(imgpack.ImgpackError, match="select: .*" + re.escape(reason)):
        imgpack.select(store, where)
    done = run_imgpack("select", store, where, check=1)
    assert done.stderr.startswith(f"imgpack: {store}/catalog.db: select: ")
    assert reason in done.stderr and not done.stdout
    after = hashlib.sha256((store / "catalog.db").read_bytes()).digest()
    assert before == after
    assert not list(tmp_path.iterdir())  # ATTACH made no file either


def test_output_file_round_trip(tmp_path, store):
    where = "idx % 2 = 1"
    out = tmp_path / "odd.txt"
    done = run_imgpack("select", store, where, "-o", out, check=0)
    assert done.stdout == ""
    text = out.read_text()
    assert text == "".join(f"{i}\n" for i in direct(store, where))
    loaded = imgpack.load_indices(out)
    assert loaded.dtype == np.uint64
    assert loaded.tolist() == imgpack.select(store, where).tolist()
    assert np.array_equal(np.loadtxt(out, dtype=np.uint64), loaded)
    run_imgpack("select", store, "0", "-o", out, check=0)
    assert out.read_text() == "" and imgpack.load_indices(out).size == 0
    out.write_text("1\nx\n")
    with pytest.raises(ValueError, match="not an index list"):
        imgpack.load_indices(out)
    run_imgpack("select", store, check=2)
    run_imgpack("select", store, "1", "--bogus", check=2)


def test_only_records_the_store_holds(tmp_path, store):
    """After a crash the catalog may hold rows past the store's count
    (docs/FORMAT.md): they are not records, and select leaves them out."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    db = sqlite3.connect(copy / "catalog.db")
    db.execute("INSERT INTO images (idx, class_id, path) VALUES (24, 0, 'x')")
    db.commit()
    db.close()
    assert len(direct(copy, "1")) == 25
    assert imgpack.select(copy, "1").tolist() == list(range(24))


def test_sharded_pack_selects_as_the_single_pack(tmp_path, store):
    out = tmp_path / "sharded"
    for k in range(3):
        pack(REPO_SAMPLE, out, "--resize", "40", "--crop", "32",
             "--shard", f"{k}/3", "--jobs", "1")
    run_imgpack("combine", out, check=0)
    where = "classes.name > ? AND idx % 2 = 0"
    got = imgpack.select(out, where, ["n02"])
    assert got.tolist() == imgpack.select(store, where, ["n02"]).tolist()
    assert len(got) > 0
    (out / "catalog.db").unlink()
    done = run_imgpack("select", out, "1", check=1)
    assert "imgpack combine" in done.stderr


def test_dataset_and_loader_over_a_subset(store):
    keep = imgpack.select(store, "class_id % 4 = 1")
    reader = imgpack.Reader(store)
    store_labels = reader.labels()
    ds = imgpack.Dataset(store, indices=keep)
    assert len(ds) == len(keep) and ds.classes == reader.classes
    assert ds.labels.tolist() == store_labels[keep].tolist()
    for i in (0, len(keep) - 1, -1):
        image, label = ds[i]
        pixels, expected = reader.image(int(keep[i]))
        assert np.array_equal(image, pixels) and label == expected
    with pytest.raises(IndexError):
        ds[len(keep)]
    ds.prefetch([0, len(keep) - 1])  # positions, not store indices
    again = pickle.loads(pickle.dumps(ds))  # as DataLoader's spawn does
    assert len(again) == len(ds) and again.labels.tolist() == ds.labels.tolist()

    for world in (1, 2):
        seen = []
        for rank in range(world):
            loader = imgpack.Loader(store, 2, subset=keep, seed=3, epoch=1,
                                    rank=rank, world_size=world,
                                    dtype="uint8")
            assert loader.num_samples == -(-len(keep) // world)
            for images, labels in loader:
                for image, label in zip(images, labels):
                    found = [j for j in keep
                             if np.array_equal(reader.image(int(j))[0],
                                               image.transpose(1, 2, 0))]
                    assert label == store_labels[found[0]]
                seen.extend(labels.tolist())
            order = loader.indices()
            assert set(order.tolist()) <= set(keep.tolist())
        assert sorted(seen) == sorted(store_labels[keep].tolist())
    loader = imgpack.Loader(store, 4, subset=keep, shuffle=True, seed=1)
    assert sorted(loader.indices().tolist()) == keep.tolist()
    with pytest.raises(imgpack.ImgpackError, match="past the store"):
        imgpack.Loader(store, 4, subset=[24])
    reader.close()


def test_relabel_renumbers_the_kept_classes(store):
    keep = imgpack.select(store, "class_id IN (2, 7, 11, 19)")
    reader = imgpack.Reader(store)
    names = reader.classes
    ds = imgpack.Dataset(store, indices=keep, relabel=True)
    assert ds.classes == [names[c] for c in (2, 7, 11, 19)]
    assert sorted(set(ds.labels.tolist())) == [0, 1, 2, 3]
    for i in range(len(ds)):
        assert ds.classes[ds[i][1]] == names[reader.image(int(keep[i]))[1]]
    # Renumbered in the batch a fill or a prefetch hands out, numpy or
    # torch alike.
    for output, prefetch in (("numpy", 0), ("numpy", 2), ("torch", 2)):
        loader = imgpack.Loader(store, 3, subset=keep, relabel=True,
                                dtype="uint8", shuffle=False, output=output,
                                prefetch=prefetch)
        assert loader.classes == ds.classes
        labels = [int(x) for _, y in loader for x in y]
        assert labels == ds.labels.tolist()
        loader.close()
    reader.close()
