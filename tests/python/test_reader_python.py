"""The Python binding (Dataset, Loader, epoch_indices) against references:
the packed bytes read with python-lmdb as docs/FORMAT.md says, numpy's
float32 arithmetic, torchvision's transforms and DistributedSampler."""
import os
import pathlib
import subprocess

import numpy as np
import pytest
import torch
from torchvision import transforms

import imgpack
from conftest import REPO_SAMPLE, pack
from storefile import Store
import synthetic_store

MEAN = np.array(imgpack.IMAGENET_MEAN, np.float32)
STD = np.array(imgpack.IMAGENET_STD, np.float32)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The bundled sample packed raw, jpeg, and uncropped (--crop 0)."""
    root = tmp_path_factory.mktemp("stores")
    pack(REPO_SAMPLE, root / "raw", "--jobs", "2")
    pack(REPO_SAMPLE, root / "jpeg", "--format", "jpeg", "--jobs", "2")
    pack(REPO_SAMPLE, root / "crop0", "--crop", "0", "--jobs", "2")
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synthetic_store.write(tmp_path_factory.mktemp("syn") / "s", 37)


def normalize(images_hwc):
    """ToTensor + Normalize in numpy's float32 arithmetic, as NCHW."""
    x = images_hwc.astype(np.float32) / np.float32(255)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def test_import_from_the_repo_without_installing():
    repo = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH="python")
    done = subprocess.run(
        ["/usr/bin/python3", "-c", "import imgpack; print(imgpack.__version__)"],
        cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.1.0"


def test_dataset_is_the_packed_pixels(stores):
    ds = imgpack.Dataset(stores / "raw")
    ref = Store(stores / "raw")
    assert len(ds) == len(ref) == 24
    assert ds.classes == sorted(os.listdir(REPO_SAMPLE))
    assert ds.info["format"] == "raw" and ds.info["complete"]
    assert (ds.info["width"], ds.info["height"]) == (224, 224)
    assert ds.labels.dtype == np.int64
    for i in range(len(ds)):
        image, label = ds[i]
        record = ref.record(i)
        assert label == record.label == ds.labels[i]
        assert np.array_equal(image, record.pixels())
        # A zero-copy view of the map: read-only, 16-byte aligned.
        assert not image.flags.writeable
        assert image.__array_interface__["data"][0] % 16 == 0
    assert np.array_equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]
    copied = imgpack.Dataset(stores / "raw", copy=True)[3][0]
    assert copied.flags.writeable and np.array_equal(copied, ds[3][0])
    ref.close()


def test_views_outlive_the_dataset(stores):
    ds = imgpack.Dataset(stores / "raw")
    image, _ = ds[5]
    want = image.copy()
    del ds
    assert np.array_equal(image, want)


def test_jpeg_records_decode_as_pillow_does(stores):
    ds = imgpack.Dataset(stores / "jpeg")
    ref = Store(stores / "jpeg")
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.flags.writeable
        assert label == ref.record(i).label
        assert np.array_equal(image, ref.record(i).pixels())
    ref.close()


def test_transform_applies(stores):
    ds = imgpack.Dataset(stores / "raw", transform=lambda a: a.sum())
    assert ds[0][0] == imgpack.Dataset(stores / "raw")[0][0].sum()


def test_uint8_batches_equal_the_records(stores):
    ds = imgpack.Dataset(stores / "jpeg")
    loader = imgpack.Loader(stores / "jpeg", 10, layout="NHWC",
                            dtype="uint8", threads=2)
    indices = [23, 0, 7, 7, 12]
    images, labels = loader.batch(indices)
    assert images.shape == (5, 224, 224, 3) and images.dtype == np.uint8
    for k, i in enumerate(indices):
        assert np.array_equal(images[k], ds[i][0])
        assert labels[k] == ds.labels[i]


def test_float32_batches_equal_numpy_and_torch(stores):
    ds = imgpack.Dataset(stores / "raw")
    for threads in (1, 2):
        loader = imgpack.Loader(stores / "raw", 8, shuffle=False,
                                threads=threads)
        images, labels = next(iter(loader))
        assert images.shape == (8, 3, 224, 224)
        assert images.dtype == np.float32
        hwc = np.stack([ds[i][0] for i in range(8)])
        # Same float32 operations in the same order: equal bit for bit.
        assert np.array_equal(images, normalize(hwc))
        assert list(labels) == list(ds.labels[:8])
    tensor = torch.from_numpy(images)  # no copy
    assert tensor.data_ptr() == images.ctypes.data
    to_tensor = transforms.Compose([
        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for k in range(3):
        assert torch.equal(tensor[k], to_tensor(ds[k][0].copy()))


def test_custom_normalization(stores):
    loader = imgpack.Loader(stores / "raw", 4, shuffle=False, mean=0.5,
                            std=0.25, threads=1)
    images, _ = loader.batch([2, 3])
    hwc = np.stack([imgpack.Dataset(stores / "raw")[i][0] for i in (2, 3)])
    x = (hwc.astype(np.float32) / np.float32(255) - np.float32(0.5)) \
        / np.float32(0.25)
    assert np.array_equal(images, x.transpose(0, 3, 1, 2))


def test_center_crop_matches_torchvision(stores):
    ds = imgpack.Dataset(stores / "crop0")
    assert ds.info["width"] == 0
    with pytest.raises(imgpack.ImgpackError) as err:
        imgpack.Loader(stores / "crop0", 4)
    assert err.value.name == "ERR_INVALID_ARG"
    loader = imgpack.Loader(stores / "crop0", 6, shuffle=False, crop=224,
                            layout="NHWC", dtype="uint8")
    images, _ = next(iter(loader))
    crop = transforms.CenterCrop(224)
    for k in range(6):
        want = crop(torch.from_numpy(ds[k][0].copy()).permute(2, 0, 1))
        assert np.array_equal(images[k], want.permute(1, 2, 0).numpy())


def test_random_crop_and_flip_are_windows(stores):
    ds = imgpack.Dataset(stores / "crop0")
    loader = imgpack.Loader(stores / "crop0", 24, shuffle=False, crop=200,
                            crop_mode="random", flip=True, layout="NHWC",
                            dtype="uint8", threads=2)
    images, _ = next(iter(loader))
    flips = 0
    for k in range(24):
        source = ds[k][0]
        found = False
        for flip in (0, 1):
            candidate = images[k][:, ::-1] if flip else images[k]
            # The window's top-left pixel row locates it; then compare.
            h, w = source.shape[:2]
            for top in range(h - 200 + 1):
                for left in range(w - 200 + 1):
                    if np.array_equal(source[top, left:left + 200],
                                      candidate[0]) and np.array_equal(
                            source[top:top + 200, left:left + 200],
                            candidate):
                        found = True
                        flips += flip
                        break
                if found:
                    break
            if found:
                break
        assert found, k
    assert 0 < flips < 24
    again, _ = next(iter(loader))
    assert np.array_equal(images, again)  # same (seed, epoch, batch)
    loader.set_epoch(1)
    other, _ = next(iter(loader))
    assert not np.array_equal(images, other)


def test_loader_covers_the_epoch(synthetic):
    loader = imgpack.Loader(synthetic, 8, seed=3, layout="NHWC",
                            dtype="uint8")
    assert len(loader) == 5
    orders = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = []
        for images, labels in loader:
            ids = [synthetic_store.index_of(im) for im in images]
            assert list(labels) == [i % 3 for i in ids]
            seen += ids
        assert sorted(seen) == list(range(37))
        orders.append(seen)
    assert orders[0] != orders[1]
    dropping = imgpack.Loader(synthetic, 8, drop_last=True, layout="NHWC",
                              dtype="uint8")
    assert len(dropping) == 4
    assert all(len(labels) == 8 for _, labels in dropping)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_rank_partition_is_distributed_samplers(world, drop_last):
    n = 37
    # Unshuffled: exactly torch's index lists.
    for rank in range(world):
        sampler = torch.utils.data.DistributedSampler(
            range(n), num_replicas=world, rank=rank, shuffle=False,
            drop_last=drop_last)
        ours = imgpack.epoch_indices(n, shuffle=False, rank=rank,
                                     world_size=world, drop_last=drop_last)
        assert list(ours) == list(sampler)
    # Shuffled: torch's rule over our permutation; disjoint and complete.
    for epoch in (0, 5):
        order = imgpack.epoch_indices(n, epoch=epoch, seed=11)
        assert sorted(order) == list(range(n))
        count = len(torch.utils.data.DistributedSampler(
            range(n), num_replicas=world, rank=0, drop_last=drop_last))
        padded = list(order) * (world + 1)
        parts = [imgpack.epoch_indices(n, epoch=epoch, seed=11, rank=r,
                                       world_size=world, drop_last=drop_last)
                 for r in range(world)]
        for rank, part in enumerate(parts):
            assert len(part) == count
            assert list(part) == padded[rank:count * world:world]
        union = [i for part in parts for i in part]
        if drop_last:
            assert len(set(union)) == len(union) == count * world
        else:
            assert set(union) == set(range(n))
            assert len(union) - len(set(union)) == count * world - n


def test_errors_carry_code_and_message(tmp_path):
    with pytest.raises(imgpack.ImgpackError) as err:
        imgpack.Dataset(tmp_path / "nothing")
    assert err.value.name == "ERR_NOT_FOUND"
    store = synthetic_store.write(tmp_path / "bad", 6, bad={4})
    ds = imgpack.Dataset(store)
    assert ds[3][1] == 0
    with pytest.raises(imgpack.ImgpackError) as err:
        ds[4]
    assert err.value.name == "ERR_CORRUPT" and "record 4" in str(err.value)
    loader = imgpack.Loader(store, 6, shuffle=False, layout="NHWC",
                            dtype="uint8")
    with pytest.raises(imgpack.ImgpackError) as err:
        next(iter(loader))
    assert "record 4" in str(err.value)
    partial = synthetic_store.write(tmp_path / "partial", 5, complete=False)
    with pytest.raises(imgpack.ImgpackError) as err:
        imgpack.Dataset(partial)
    assert err.value.name == "ERR_INCOMPLETE"
    ds = imgpack.Dataset(partial, incomplete=True)
    assert list(ds.labels) == [0, 1, 2, 0, 1]
    assert ds[2][0].flags.writeable  # copies: the store may still change
