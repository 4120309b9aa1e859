"""imgpack stats, grid and classes: numbers against numpy and the catalog,
sheets against the records' pixels, misuse, and the Loader's default
mean/std."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import IMGPACK, REPO_SAMPLE, catalog, pack, run_imgpack

import imgpack


def numpy_stats(pixels):
    """mean and std (ddof=0) over every pixel of HWC uint8 images, 0..1."""
    flat = np.concatenate([p.reshape(-1, 3) for p in pixels]).astype(
        np.float64) / 255.0
    return flat.mean(axis=0), flat.std(axis=0)


def stats_json(store, *options):
    done = run_imgpack("stats", store, "--json", *options, check=0)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def repo_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("repo") / "store"
    pack(REPO_SAMPLE, out, "--synsets", REPO_SAMPLE.parent /
         "sample.synsets.txt")
    return out


def test_stats_match_numpy_on_every_record(sample_pack, open_store):
    store = open_store(sample_pack)
    mean, std = numpy_stats(store.record(i).pixels() for i in range(len(store)))
    one = stats_json(sample_pack, "--threads", "1")
    two = stats_json(sample_pack, "--threads", "2")
    assert one["records"] == len(store) and not one["sampled"]
    np.testing.assert_allclose(one["mean"], mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(one["std"], std, rtol=0, atol=1e-6)
    # Exact integer sums: the thread count changes nothing, not one bit.
    assert (one["mean"], one["std"]) == (two["mean"], two["std"])
    rows = dict(catalog(sample_pack).execute(
        "SELECT key, value FROM dataset WHERE key IN "
        "('mean', 'std', 'stats_records', 'stats_seed')"))
    assert json.loads(rows["mean"]) == one["mean"]
    assert json.loads(rows["std"]) == one["std"]
    assert rows["stats_records"] == len(store) and rows["stats_seed"] is None
    text = run_imgpack("stats", sample_pack, check=0).stdout
    assert "transforms.Normalize(mean=[%.4f, " % one["mean"][0] in text


def test_stats_sample_is_seeded(sample_pack, open_store):
    store = open_store(sample_pack)
    a = stats_json(sample_pack, "--sample", "40", "--seed", "7")
    b = stats_json(sample_pack, "--sample", "40", "--seed", "7",
                   "--threads", "1")
    c = stats_json(sample_pack, "--sample", "40", "--seed", "8")
    assert a["sampled"] and a["records"] == 40 and a["seed"] == 7
    assert (a["mean"], a["std"]) == (b["mean"], b["std"])
    assert a["mean"] != c["mean"]
    chosen = imgpack.epoch_indices(len(store), seed=7)[:40]
    mean, std = numpy_stats(store.record(int(i)).pixels() for i in chosen)
    np.testing.assert_allclose(a["mean"], mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["std"], std, rtol=0, atol=1e-6)
    seed = catalog(sample_pack).execute(
        "SELECT value FROM dataset WHERE key = 'stats_seed'").fetchone()[0]
    assert seed == "8"  # the last run's
    # A sample as large as the store is the whole store.
    assert not stats_json(sample_pack, "--sample", "100000")["sampled"]


def test_stats_of_jpeg_and_uneven_records(repo_pack, tmp_path):
    jpeg = tmp_path / "jpeg"
    uneven = tmp_path / "uneven"
    pack(REPO_SAMPLE, jpeg, "--format", "jpeg")
    pack(REPO_SAMPLE, uneven, "--resize", "64", "--crop", "0")
    for store in (jpeg, uneven):
        with imgpack.Reader(store) as reader:
            images = [reader.image(i, copy=True)[0]
                      for i in range(len(reader))]
            assert reader.channel_stats() == tuple(
                tuple(x) for x in (stats_json(store)["mean"],
                                   stats_json(store)["std"]))
        mean, std = numpy_stats(images)
        got = stats_json(store)
        np.testing.assert_allclose(got["mean"], mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["std"], std, rtol=0, atol=1e-6)
    assert len({im.shape for im in images}) > 1  # sizes really vary


def test_loader_uses_stored_stats_only_when_asked(tmp_path):
    fresh = tmp_path / "fresh"
    pack(REPO_SAMPLE, fresh)
    with pytest.raises(ValueError, match="imgpack stats"):
        imgpack.Loader(fresh, 4, mean="store")
    got = stats_json(fresh)
    assert imgpack.stored_stats(fresh) == (tuple(got["mean"]),
                                           tuple(got["std"]))
    # `imgpack stats` changes nothing for a Loader that does not ask.
    loader = imgpack.Loader(fresh, 4, shuffle=False)
    assert loader.mean == imgpack.IMAGENET_MEAN
    assert loader.std == imgpack.IMAGENET_STD
    loader.close()
    loader = imgpack.Loader(fresh, 4, shuffle=False, mean="store")
    assert loader.mean == tuple(got["mean"])
    assert loader.std == tuple(got["std"])
    images, _ = loader.batch([0])
    with imgpack.Reader(fresh) as reader:
        pixels = reader.image(0, copy=True)[0]
    mean = np.asarray(got["mean"], np.float32)[:, None, None]
    std = np.asarray(got["std"], np.float32)[:, None, None]
    want = (pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            - mean) / std
    np.testing.assert_array_equal(images[0], want)
    loader.close()
    with pytest.raises(ValueError, match="std"):
        imgpack.Loader(fresh, 4, mean="store", std=(0.5,))
    loader = imgpack.Loader(fresh, 4, mean=(0.5,), std=(0.5,))
    assert loader.mean == (0.5,) and loader.std == (0.5,)
    loader.close()


def check_cells(sheet_path, layout, store):
    sheet = np.asarray(Image.open(sheet_path).convert("RGB"))
    assert sheet.shape == (layout["height"], layout["width"], 3)
    for cell in layout["cells"]:
        record = store.record(cell["index"])
        assert cell["label"] == record.label
        assert (cell["width"], cell["height"]) == (record.width,
                                                   record.height)
        x, y = cell["x"], cell["y"]
        got = sheet[y:y + record.height, x:x + record.width]
        np.testing.assert_array_equal(got, record.pixels())
    return sheet


def test_grid_cells_equal_records(repo_pack, open_store, tmp_path):
    store = open_store(repo_pack)
    sheet = tmp_path / "sheet.png"
    done = run_imgpack("grid", repo_pack, "-o", sheet, "--cols", "5",
                       "--json", check=0)
    layout = json.loads(done.stdout)
    assert [c["index"] for c in layout["cells"]] == list(range(len(store)))
    assert layout["cols"] == 5 and layout["rows"] == 5
    pixels = check_cells(sheet, layout, store)
    # The caption strip under the first row carries text.
    strip = pixels[4 + 224:4 + 224 + 30, 4:4 + 224]
    assert (strip > 200).any()

    chosen = tmp_path / "chosen.png"
    layout = json.loads(run_imgpack(
        "grid", repo_pack, "-o", chosen, "--indices", "3,10-12,0",
        "--json", check=0).stdout)
    assert [c["index"] for c in layout["cells"]] == [3, 10, 11, 12, 0]
    check_cells(chosen, layout, store)

    names = [n for n in imgpack.Reader(repo_pack).classes]
    layout = json.loads(run_imgpack(
        "grid", repo_pack, "-o", chosen, "--classes",
        "%s,%s" % (names[5], names[2]), "--json", check=0).stdout)
    assert [c["label"] for c in layout["cells"]] == [5, 2]

    jpg = tmp_path / "sheet.jpg"
    run_imgpack("grid", repo_pack, "-o", jpg, "--quality", "85", check=0)
    with Image.open(jpg) as image:
        assert image.format == "JPEG" and image.size[0] == 4 + 8 * 228


def test_grid_uneven_records_are_centred(tmp_path, open_store):
    store_dir = tmp_path / "uneven"
    pack(REPO_SAMPLE, store_dir, "--resize", "48", "--crop", "0")
    sheet = tmp_path / "sheet.png"
    layout = json.loads(run_imgpack("grid", store_dir, "-o", sheet,
                                    "--per-class", "1", "--json",
                                    check=0).stdout)
    check_cells(sheet, layout, open_store(store_dir))
    assert layout["cell_width"] == max(c["width"] for c in layout["cells"])


def imbalanced_tree(root):
    """Classes with 4, 1 and 2 images, from the bundled photos."""
    photos = sorted(REPO_SAMPLE.glob("*/*.JPEG"))
    for name, count in (("alpha", 4), ("beta", 1), ("gamma", 2)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            shutil.copy(photos.pop(), root / name / ("%d.jpg" % i))
    return root


def test_classes_counts_and_weights(tmp_path, open_store):
    store_dir = tmp_path / "store"
    pack(imbalanced_tree(tmp_path / "src"), store_dir, "--resize", "32",
         "--crop", "32")
    got = json.loads(run_imgpack("classes", store_dir, "--json",
                                 check=0).stdout)
    store = open_store(store_dir)
    labels = [store.record(i).label for i in range(len(store))]
    counts = {c["name"]: c["count"] for c in got["classes"]}
    assert counts == {"alpha": labels.count(0), "beta": labels.count(1),
                      "gamma": labels.count(2)} == {"alpha": 4, "beta": 1,
                                                    "gamma": 2}
    assert [c["name"] for c in got["classes"]] == ["alpha", "gamma", "beta"]
    view = {name: weight for name, weight in catalog(store_dir).execute(
        "SELECT name, weight FROM class_weights")}
    assert {c["name"]: c["weight"] for c in got["classes"]} == view
    assert view["beta"] == pytest.approx(7 / 3)
    assert (got["min"], got["median"], got["max"]) == (1, 2, 4)
    assert (got["min_class"], got["max_class"]) == ("beta", "alpha")
    assert got["imbalance"] == 4 and got["records"] == 7
    assert got["num_classes"] == 3 and got["empty_classes"] == 0

    top = json.loads(run_imgpack("classes", store_dir, "--json", "--top",
                                 "1", check=0).stdout)
    assert [c["name"] for c in top["classes"]] == ["alpha"]
    assert top["min"] == 1  # the summary still covers every class
    text = run_imgpack("classes", store_dir, check=0).stdout
    assert "imbalance:  4.00" in text
    alpha = next(line for line in text.splitlines()
                 if line.startswith("alpha"))
    beta = next(line for line in text.splitlines()
                if line.startswith("beta"))
    assert alpha.count("#") > beta.count("#") > 0


@pytest.mark.parametrize("args", [
    ("stats",),
    ("stats", "STORE", "--sample", "0"),
    ("stats", "STORE", "--threads", "300"),
    ("stats", "STORE", "--seed", "3"),
    ("stats", "STORE", "--bogus"),
    ("grid", "STORE"),
    ("grid", "STORE", "-o", "x.gif"),
    ("grid", "STORE", "-o", "x.png", "--cols", "0"),
    ("grid", "STORE", "-o", "x.png", "--indices", "1,,2"),
    ("grid", "STORE", "-o", "x.png", "--indices", "5-2"),
    ("grid", "STORE", "-o", "x.png", "--indices", "1", "--per-class", "2"),
    ("grid", "STORE", "-o", "x.png", "--indices", "0-5000"),
    ("classes",),
    ("classes", "STORE", "--top", "0"),
    ("classes", "STORE", "STORE"),
])
def test_misuse_exits_2(args, repo_pack, tmp_path):
    args = [repo_pack if a == "STORE" else a for a in args]
    args = [tmp_path / a if a in ("x.png", "x.gif") else a for a in args]
    done = run_imgpack(*args, check=2)
    assert done.stdout == "" and "--help" in done.stderr


@pytest.mark.parametrize("command", ["stats", "grid", "classes"])
def test_help_and_failures(command, tmp_path):
    done = run_imgpack(command, "--help", check=0)
    assert done.stdout.startswith("Usage: imgpack " + command)
    extra = ["-o", tmp_path / "x.png"] if command == "grid" else []
    done = run_imgpack(command, tmp_path / "missing", *extra, check=1)
    assert done.stderr.startswith("imgpack: ")


def test_grid_unknown_class_and_index(repo_pack, tmp_path):
    out = tmp_path / "x.png"
    done = run_imgpack("grid", repo_pack, "-o", out, "--classes", "nope",
                       check=1)
    assert "no class named 'nope'" in done.stderr
    run_imgpack("grid", repo_pack, "-o", out, "--indices", "24", check=1)
    assert not out.exists()


# Class names that are not UTF-8, or only nearly: a Latin-1 byte, a UTF-8
# encoded surrogate, an overlong '/', a code point past U+10FFFF, a sequence
# cut short, control characters and JSON's own quote and backslash.
ODD_CLASS_NAMES = [b"caf\xe9", b"\xed\xa0\x80 surrogate", b"\xe0\x80\xaf long",
                   b"\xf4\x90\x80\x80 big", b"cut \xe2\x82", b"nl\n\x01\"\\",
                   "snowman \u2603".encode()]


def test_every_json_output_parses_and_gives_odd_names_back(tmp_path):
    """info, classes, stats and grid --json with such names: strict UTF-8
    JSON, and os.fsencode of each name is the directory name (README,
    "Inspect what you packed")."""
    photos = sorted(REPO_SAMPLE.glob("*/*.JPEG"))
    src = tmp_path / "src"
    for name, photo in zip(ODD_CLASS_NAMES, photos):
        folder = src / os.fsdecode(name)
        folder.mkdir(parents=True)
        shutil.copy(photo, folder / "0.jpg")
    store = tmp_path / "store"
    pack(src, store, "--resize", "32", "--crop", "32")
    in_order = sorted(ODD_CLASS_NAMES)

    def json_of(*args):
        done = subprocess.run([IMGPACK, *map(str, args), "--json"],
                              capture_output=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.decode("utf-8"))

    info = json_of("info", store)
    assert [os.fsencode(n) for n in info["classes"]] == in_order
    classes = json_of("classes", store)
    assert sorted(os.fsencode(c["name"]) for c in classes["classes"]) == \
        in_order
    assert json_of("stats", store)["records"] == len(in_order)
    grid = json_of("grid", store, "-o", tmp_path / "sheet.png")
    assert [os.fsencode(c["class"]) for c in grid["cells"]] == in_order
