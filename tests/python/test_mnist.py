"""MNIST-style sources: IDX files (gzip or not) and the Kaggle CSV, with
their checks, class names and checksums, compared with packing the same
images from an ImageFolder tree."""
import gzip
import hashlib
import os
import struct

import numpy as np
from PIL import Image

from conftest import SAMPLE, catalog, pack
from storefile import Store

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
           "Shirt", "Sneaker", "Bag", "Ankle boot"]


def digits(count=40):
    """28x28 gray images made from real photos, and labels 0..9."""
    files = sorted(SAMPLE.glob("*/*.JPEG"))[:count]
    images = np.stack([np.asarray(Image.open(f).convert("L").resize((28, 28)))
                       for f in files])
    return images, np.arange(count, dtype=np.uint8) % 10


def write_idx(folder, images, labels, gz=True, prefix="train"):
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), 28, 28))
        f.write(images.tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + labels.tobytes())
    return folder / f"{prefix}-images-idx3-ubyte{suffix}"


def records(path):
    store = Store(path)
    out = [store.record(i) for i in range(len(store))]
    store.close()
    return out


def test_idx_and_csv_pack_the_same_gray_records(tmp_path):
    images, labels = digits()
    idx = write_idx(tmp_path, images, labels)
    csv = tmp_path / "fashion-mnist_train.csv"
    with open(csv, "w") as f:
        f.write("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n")
        for image, label in zip(images, labels):
            f.write(f"{label}," + ",".join(map(str, image.ravel())) + "\n")
    pack(idx, tmp_path / "idx", "--class-names", "fashion-mnist")
    pack(csv, tmp_path / "csv", "--class-names", "fashion-mnist")
    for out in (tmp_path / "idx", tmp_path / "csv"):
        got = records(out)
        assert [r.label for r in got] == list(labels)
        for record, image in zip(got, images):
            assert (record.width, record.height, record.channels) == (28, 28, 1)
            assert np.array_equal(record.pixels()[:, :, 0], image)
        db = catalog(out)
        assert [n for n, in db.execute(
            "SELECT name FROM classes ORDER BY class_id")] == FASHION
        assert Store(out).meta("width") == b"28"
    assert catalog(tmp_path / "idx").execute(
        "SELECT path FROM images WHERE idx = 3").fetchone() == (
        "train-images-idx3-ubyte.gz#3",)


def test_idx_matches_an_imagefolder_of_the_same_images(tmp_path):
    images, labels = digits(20)
    idx = write_idx(tmp_path, images, labels, gz=False)
    tree = tmp_path / "tree"
    for i, (image, label) in enumerate(zip(images, labels)):
        (tree / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tree / str(label) / f"{i:03d}.png")
    pack(idx, tmp_path / "a", "--channels", "3", "--resize", "32",
         "--crop", "30")
    pack(tree, tmp_path / "b", "--resize", "32", "--crop", "30")
    by_name = {p: i for i, p in catalog(tmp_path / "b").execute(
        "SELECT idx, path FROM images")}
    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    for i, record in enumerate(a):
        other = b[by_name[f"{labels[i]}/{i:03d}.png"]]
        assert (record.label, record.payload) == (other.label, other.payload)


def test_idx_checks_before_writing(tmp_path):
    images, labels = digits(12)
    idx = write_idx(tmp_path, images, labels[:11])
    done = pack(idx, tmp_path / "count", check=1)
    assert "12 images but" in done.stderr and "11 labels" in done.stderr
    assert not (tmp_path / "count").exists()
    (tmp_path / "bad").mkdir()
    with gzip.open(tmp_path / "bad/x-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x802, 1, 28, 28) + bytes(784))
    done = pack(tmp_path / "bad/x-images-idx3-ubyte.gz", tmp_path / "m",
                check=1)
    assert "magic 0x00000802" in done.stderr
    labels = labels.copy()
    labels[3] = 12
    idx = write_idx(tmp_path / "bad", images, labels)
    done = pack(idx, tmp_path / "l", "--class-names", "mnist", check=1)
    assert "label 12 is not below the 10 classes" in done.stderr


def test_sha256_of_the_idx_files(tmp_path):
    images, labels = digits(10)
    idx = write_idx(tmp_path, images, labels)
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("".join(
        f"{hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()}  {n}\n"
        for n in names))
    pack(idx, tmp_path / "ok", "--sha256", sums)
    data = bytearray((tmp_path / names[1]).read_bytes())
    data[-1] ^= 1
    (tmp_path / names[1]).write_bytes(bytes(data))
    done = pack(idx, tmp_path / "bad", "--sha256", sums, check=1)
    assert names[1] in done.stderr and "SHA-256" in done.stderr
    assert not os.path.exists(tmp_path / "bad")


def test_gray_store_feeds_the_loader(tmp_path):
    import imgpack
    images, labels = digits(16)
    pack(write_idx(tmp_path, images, labels), tmp_path / "s")
    loader = imgpack.Loader(str(tmp_path / "s"), batch_size=8, shuffle=False,
                            mean=[0.5], std=[0.25])
    batch, batch_labels = next(iter(loader))
    assert batch.shape == (8, 1, 28, 28)
    assert list(batch_labels) == list(labels[:8])
    want = (images[:8].astype(np.float32) / 255 - np.float32(0.5)) / \
        np.float32(0.25)
    assert np.array_equal(batch[:, 0], want)
