"""Sharded datasets through the binding: the shared sample packed once,
split into shards (shardify.py) or packed with `imgpack pack --shard`,
must read exactly as the single pack: same count, classes, labels, bytes
at every index, batches, epoch order per rank, and channel stats; and
broken shard sets are refused with a message naming the shard."""
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import imgpack
from conftest import SAMPLE, pack, run_imgpack
import shardify

MEAN, STD = imgpack.IMAGENET_MEAN, imgpack.IMAGENET_STD


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "store"
    pack(SAMPLE, out, "--jobs", "2")
    return out


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, single):
    """The single pack split 3 ways, and 5 ways with an empty shard."""
    root = tmp_path_factory.mktemp("sharded")
    shardify.split(single, root / "three", 3)
    shardify.split(single, root / "uneven", 5,
                   bounds=[(0, 1), (1, 120), (120, 120), (120, 299),
                           (299, 300)])
    return root


def assert_same_dataset(path, single):
    ours, ref = imgpack.Reader(path), imgpack.Reader(single)
    assert len(ours) == len(ref) == 300
    assert ours.classes == ref.classes
    info, want = ours.info, ref.info
    assert info.pop("shards") > 1 and want.pop("shards") == 1
    assert {**info, "path": ""} == {**want, "path": ""}
    assert np.array_equal(ours.labels(), ref.labels())
    for i in range(len(ref)):
        data, rec = ours.get(i)
        want_data, want_rec = ref.get(i)
        assert data == want_data, i
        assert (rec.label, rec.width, rec.height) == \
            (want_rec.label, want_rec.width, want_rec.height)
    ours.close()
    ref.close()


@pytest.mark.parametrize("name", ["three", "uneven"])
def test_shards_read_as_the_single_pack(sharded, single, name):
    assert_same_dataset(sharded / name, single)


@pytest.mark.parametrize("name", ["three", "uneven"])
def test_batches_and_ranks_equal_the_single_packs(sharded, single, name):
    for world, rank, drop_last in ((1, 0, False), (3, 2, False),
                                   (4, 1, True)):
        kwargs = dict(seed=7, epoch=3, rank=rank, world_size=world,
                      drop_last=drop_last, mean=MEAN, std=STD, threads=2)
        ours = imgpack.Loader(sharded / name, 32, **kwargs)
        ref = imgpack.Loader(single, 32, **kwargs)
        assert len(ours) == len(ref)
        assert np.array_equal(ours.indices(), ref.indices())
        for (images, labels), (want, want_labels) in zip(ours, ref):
            assert np.array_equal(images, want)
            assert np.array_equal(labels, want_labels)
    # A random crop with flips draws from the batch seed alone.
    kwargs = dict(shuffle=False, crop=200, crop_mode="random", flip=True,
                  layout="NHWC", dtype="uint8", mean=MEAN, std=STD)
    ours = imgpack.Loader(sharded / name, 50, **kwargs)
    ref = imgpack.Loader(single, 50, **kwargs)
    indices = [299, 0, 119, 120, 1, 298, 150]
    assert np.array_equal(ours.batch(indices)[0], ref.batch(indices)[0])


def test_dataset_in_forked_workers(sharded, single):
    ds, ref = imgpack.Dataset(sharded / "uneven"), imgpack.Dataset(single)
    assert np.array_equal(ds[120][0], ref[120][0])  # used before fork
    loader = DataLoader(ds, batch_size=16, shuffle=False, num_workers=2,
                        multiprocessing_context="fork")
    ref_loader = DataLoader(imgpack.Dataset(single, copy=True),
                            batch_size=16, shuffle=False)
    for (images, labels), (want, want_labels) in zip(loader, ref_loader):
        assert torch.equal(images, want)
        assert torch.equal(labels, want_labels)
    assert np.array_equal(ds.labels, ref.labels)
    assert not ds[299][0].flags.writeable  # still a view of a shard's map


def test_channel_stats_equal(sharded, single):
    indices = [0, 5, 119, 120, 299, 5]
    assert imgpack.Reader(sharded / "three").channel_stats(
        indices, threads=2) == imgpack.Reader(single).channel_stats(
        indices, threads=1)


def open_error(path, **options):
    with pytest.raises(imgpack.ImgpackError) as err:
        imgpack.Reader(path, **options)
    return err.value


def test_missing_and_mismatched_shards_are_refused(tmp_path, single):
    out = shardify.split(single, tmp_path / "missing", 3)
    shutil.rmtree(out / "shard-1-of-3")
    err = open_error(out)
    assert err.name == "ERR_NOT_A_STORE"
    assert "shard-1-of-3 is missing" in str(err)

    out = shardify.split(single, tmp_path / "numbers", 3)
    shutil.copytree(out / "shard-0-of-3", out / "shard-0-of-2")
    assert "shards disagree on their number" in str(open_error(out))

    for key, value in (("settings", b"resize=288 crop=224 format=raw"),
                       ("source_digest", b"0" * 64),
                       ("class/00000007", b"n99999999"),
                       ("num_classes", b"299")):
        out = shardify.split(single, tmp_path / key.replace("/", "_"), 3,
                             meta={2: {key: value}})
        err = open_error(out)
        assert err.name == "ERR_NOT_A_STORE", key
        assert "shard-2-of-3" in str(err) and key in str(err), str(err)
    out = shardify.split(single, tmp_path / "renamed", 3)
    (out / "shard-1-of-3").rename(out / "tmp")
    (out / "shard-2-of-3").rename(out / "shard-1-of-3")
    (out / "tmp").rename(out / "shard-2-of-3")
    assert 'metadata "shard" is "2/3"' in str(open_error(out))
    err = open_error(tmp_path)
    assert err.name == "ERR_NOT_A_STORE" and "no data.mdb" in str(err)


def test_incomplete_shards(tmp_path, single):
    out = shardify.split(single, tmp_path / "partial", 3, complete={0, 2})
    err = open_error(out)
    assert err.name == "ERR_INCOMPLETE" and "shard-1-of-3" in str(err)
    ours = imgpack.Reader(out, incomplete=True)
    ref = imgpack.Reader(single)
    assert not ours.info["complete"] and len(ours) == 300
    assert np.array_equal(ours.labels(), ref.labels())  # read from headers
    assert ours.get(150)[0] == ref.get(150)[0]
    assert ours.image(150)[0].flags.writeable  # copies: it may change


def shard_option_exists():
    return "--shard" in run_imgpack("pack", "--help").stdout


@pytest.mark.skipif(not shard_option_exists(), reason="no pack --shard")
def test_pack_shard_reads_as_the_single_pack(tmp_path, single):
    out = tmp_path / "packed"
    for k in range(3):
        pack(SAMPLE, out, "--shard", "%d/3" % k, "--jobs", "2")
    assert_same_dataset(out, single)
    kwargs = dict(seed=1, epoch=2, rank=1, world_size=2, mean=MEAN, std=STD)
    ours = imgpack.Loader(out, 64, **kwargs)
    ref = imgpack.Loader(single, 64, **kwargs)
    for (images, labels), (want, want_labels) in zip(ours, ref):
        assert np.array_equal(images, want)
        assert np.array_equal(labels, want_labels)
