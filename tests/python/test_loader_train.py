"""imgpack.Loader for training: RandomResizedCrop + flip batches against
torchvision's resized_crop/hflip on the records (uint8, float32, float16,
bfloat16; NCHW, NHWC; numpy and torch), the same images whatever the batch
size, threads, prefetch or world size, an external order, resuming an
epoch in a new process, and prefetch stopping cleanly (break, del, fork,
DataLoader workers, a bad record)."""
import gc
import json
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

import imgpack
import synthetic_store
from conftest import SAMPLE, pack
from imgpack._lib import lib

MEAN, STD = imgpack.IMAGENET_MEAN, imgpack.IMAGENET_STD
SMALL = dict(crop=64, crop_mode="random_resized", flip=True, dtype="uint8",
             layout="NHWC", seed=5, epoch=2)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The shared sample packed for training (--crop 0), raw and jpeg q90."""
    root = tmp_path_factory.mktemp("train")
    pack(SAMPLE, root / "raw", "--crop", "0", "--jobs", "2")
    pack(SAMPLE, root / "jpeg", "--crop", "0", "--format", "jpeg",
         "--quality", "90", "--jobs", "2")
    return root


def reference(record, seed, epoch, index, size=224):
    """torchvision's resized_crop (+ hflip) of the record's PIL image, with
    the box and flip imgpack.augment_params reports."""
    height, width = record.shape[:2]
    top, left, h, w, flipped = imgpack.augment_params(seed, epoch, index,
                                                      width, height)
    image = F.resized_crop(Image.fromarray(record), top, left, h, w,
                           [size, size], InterpolationMode.BILINEAR)
    return F.hflip(image) if flipped else image, flipped


@pytest.mark.parametrize("kind", ["raw", "jpeg"])
def test_random_resized_crop_is_torchvisions(stores, kind):
    ds = imgpack.Dataset(stores / kind, copy=True)
    count = 120
    loader = imgpack.Loader(
        stores / kind, 48, indices=range(count), crop=224,
        crop_mode="random_resized", flip=True, dtype="uint8", layout="NHWC",
        output="torch", seed=7, epoch=3, threads=2, prefetch=1)
    got = torch.cat([images for images, _ in loader])
    assert got.shape == (count, 224, 224, 3) and got.dtype == torch.uint8
    flips, sizes = 0, set()
    for i in range(count):
        record = ds[i][0]
        want, flipped = reference(record, 7, 3, i)
        flips += flipped
        sizes.add(imgpack.augment_params(7, 3, i, record.shape[1],
                                         record.shape[0])[2:4])
        assert np.array_equal(got[i].numpy(), np.asarray(want)), i
    assert 0 < flips < count and len(sizes) > count // 2


def test_float_batches_are_torchs_conversions(stores):
    """float32 = ToTensor + Normalize of the reference; float16/bfloat16 =
    torch's .half()/.bfloat16() of that; NCHW and NHWC; numpy and torch."""
    ds = imgpack.Dataset(stores / "raw", copy=True)
    indices = [3, 290, 41, 41, 150, 7, 299, 0, 222, 18, 64, 100]
    want = torch.stack([
        F.normalize(F.to_tensor(reference(ds[i][0], 1, 4, i)[0]), MEAN, STD)
        for i in indices])
    cases = [("float32", "NCHW", "torch", lambda x: x),
             ("float16", "NCHW", "torch", lambda x: x.half()),
             ("bfloat16", "NHWC", "torch",
              lambda x: x.bfloat16().permute(0, 2, 3, 1)),
             ("float16", "NHWC", "numpy",
              lambda x: x.half().permute(0, 2, 3, 1).numpy()),
             ("float32", "NHWC", "numpy",
              lambda x: x.permute(0, 2, 3, 1).numpy())]
    for dtype, layout, output, convert in cases:
        loader = imgpack.Loader(
            stores / "raw", 5, indices=indices, crop=224,
            crop_mode="random_resized", flip=True, dtype=dtype,
            layout=layout, output=output, seed=1, epoch=4, threads=2)
        parts = [images for images, _ in loader]
        expected = convert(want)
        if output == "torch":
            got = torch.cat(parts)
            assert got.dtype == expected.dtype
            assert torch.equal(got, expected), (dtype, layout)
        else:
            got = np.concatenate(parts)
            assert got.dtype == expected.dtype
            assert np.array_equal(got, expected), (dtype, layout)
        loader.close()


def epoch_images(store, **options):
    """{record index: image bytes} of one epoch of a Loader; an index met
    twice (DistributedSampler's padding) must give the same image."""
    loader = imgpack.Loader(store, **dict(SMALL, **options))
    order, got, position = loader.indices(), {}, 0
    for images, labels in loader:
        for image in np.asarray(images):
            key = int(order[position])
            assert got.setdefault(key, image.tobytes()) == image.tobytes()
            position += 1
    assert position == len(order)
    loader.close()
    return got


def test_same_images_whatever_the_split(stores):
    store = stores / "raw"
    one = epoch_images(store, batch_size=32, threads=1)
    assert len(one) == 300
    assert epoch_images(store, batch_size=7, threads=2, prefetch=3) == one
    assert epoch_images(store, batch_size=300, output="torch") == one
    for world in (2, 3):
        union = {}
        for rank in range(world):
            union.update(epoch_images(store, batch_size=16, threads=2,
                                      prefetch=1, rank=rank,
                                      world_size=world))
        assert union == one, world
    # Another epoch draws other boxes.
    assert epoch_images(store, batch_size=64, epoch=3) != one


def test_external_order(stores):
    store = stores / "raw"
    sampler = DistributedSampler(range(300), num_replicas=2, rank=1,
                                 shuffle=True, seed=3)
    loader = imgpack.Loader(store, 16, indices=sampler, **SMALL)
    sampler.set_epoch(SMALL["epoch"])
    assert list(loader.indices()) == list(sampler)
    assert len(loader) == -(-len(sampler) // 16)
    loader.set_epoch(6)
    sampler.set_epoch(6)
    assert list(loader.indices()) == list(sampler)
    loader.set_epoch(SMALL["epoch"])
    ours = epoch_images(store, batch_size=16, indices=sampler)
    everything = epoch_images(store, batch_size=50)
    assert ours == {i: everything[i] for i in sampler}
    subset = [5, 17, 17, 299]
    assert epoch_images(store, batch_size=3, indices=subset) == {
        i: everything[i] for i in subset}
    with pytest.raises(ValueError):
        imgpack.Loader(store, 4, indices=[300])
    with pytest.raises(ValueError):
        imgpack.Loader(store, 4, indices=[1], rank=1, world_size=2)


RESUME = r"""
import json, sys
import numpy as np
import imgpack
store, state_file, out, options, stop = sys.argv[1:6]
options = json.loads(options)
loader = imgpack.Loader(store, **options)
loader.set_epoch(1)
if stop == "rest":
    with open(state_file) as f:
        loader.load_state_dict(json.load(f))
    loader.set_epoch(1)  # what a training loop does: keeps the position
batches = []
for number, (images, labels) in enumerate(loader):
    batches.append(np.concatenate([images.reshape(len(labels), -1),
                                   labels[:, None].astype(np.uint8)], 1))
    if stop.isdigit() and number + 1 == int(stop):
        with open(state_file, "w") as f:
            json.dump(loader.state_dict(), f)
        break
np.save(out, np.concatenate(batches))
"""


def run_part(tmp_path, store, options, stop):
    out = tmp_path / ("%s.npy" % stop)
    done = subprocess.run(
        [sys.executable, "-c", RESUME, str(store), str(tmp_path / "state"),
         str(out), json.dumps(options), str(stop)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return np.load(out)


@pytest.mark.parametrize("rank", [0, 1])
def test_resume_in_a_new_process_is_the_rest_of_the_epoch(stores, tmp_path,
                                                           rank):
    store = stores / "raw"
    base = dict(SMALL, batch_size=24, dtype="float16", layout="NCHW",
                rank=rank, world_size=2, seed=9)
    whole = run_part(tmp_path, store, dict(base, threads=1), "all")
    first = run_part(tmp_path, store, dict(base, threads=2, prefetch=3), 2)
    # Resumed with other threads, prefetch and even batch size.
    rest = run_part(tmp_path, store, dict(base, threads=1, prefetch=0,
                                          batch_size=10), "rest")
    assert len(first) == 48 and len(whole) == 150
    assert np.array_equal(np.concatenate([first, rest]), whole)
    # A state of another order is refused.
    with open(tmp_path / "state") as f:
        state = json.load(f)
    other = imgpack.Loader(store, **dict(base, seed=10))
    with pytest.raises(ValueError):
        other.load_state_dict(state)
    other.close()


def imgpack_threads():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/comm" % task) as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return sorted(n for n in names if n.startswith("imgpack-b"))


def reference_epoch(store, **options):
    loader = imgpack.Loader(store, **dict(SMALL, prefetch=0, **options))
    batches = [images.copy() for images, _ in loader]
    loader.close()
    return batches


def test_prefetch_stops_on_break_and_del(stores):
    store = stores / "raw"
    want = reference_epoch(store, batch_size=20)
    gc.collect()
    before = imgpack_threads()
    loader = imgpack.Loader(store, 20, prefetch=3, threads=2, **SMALL)
    for number, (images, _) in enumerate(loader):
        assert np.array_equal(images, want[number])
        if number == 1:
            break
    assert lib.imgpack_batcher_in_flight(loader._batcher) == 0
    assert len(imgpack_threads()) > len(before)
    # The next epoch starts from the beginning, as a list's would.
    again = [images.copy() for images, _ in loader]
    assert len(again) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(again, want))
    it = iter(loader)
    next(it)
    assert lib.imgpack_batcher_in_flight(loader._batcher) == 3
    del loader, it
    gc.collect()
    assert imgpack_threads() == before


def test_batches_stay_valid_while_held(stores):
    store = stores / "raw"
    want = reference_epoch(store, batch_size=16)
    for output in ("numpy", "torch"):
        loader = imgpack.Loader(store, 16, prefetch=2, output=output, **SMALL)
        held = list(loader)  # every batch kept: none may be refilled
        assert all(np.array_equal(np.asarray(images), w)
                   for (images, _), w in zip(held, want))
        del held
        addresses = set()
        for _ in range(2):
            for images, _ in loader:
                addresses.add(images.ctypes.data if output == "numpy"
                              else images.data_ptr())
        assert len(addresses) <= 2 + 2  # prefetch + 2 buffers, reused
        loader.close()


def test_fork_while_batches_are_in_flight(stores):
    store = stores / "raw"
    want = reference_epoch(store, batch_size=20)
    loader = imgpack.Loader(store, 20, prefetch=2, threads=2, **SMALL)
    it = iter(loader)
    first, _ = next(it)
    assert np.array_equal(first, want[0])
    assert lib.imgpack_batcher_in_flight(loader._batcher) == 2
    pid = os.fork()
    if pid == 0:  # the child goes on with the same iterator, on its own
        signal.alarm(60)
        ok = all(np.array_equal(images, w) for (images, _), w in
                 zip(it, want[1:]))
        ok = ok and np.array_equal(loader.batch(loader.indices()[:20])[0],
                                   want[0])
        os._exit(0 if ok else 1)
    rest = [images.copy() for images, _ in it]
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert all(np.array_equal(a, b) for a, b in zip(rest, want[1:]))
    assert len(rest) == len(want) - 1


class OneRecord(torch.utils.data.Dataset):
    """Each item made by a Loader inherited from the parent."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return self.loader.batch([i])[0][0].copy()


def test_dataloader_workers_fork_a_prefetching_loader(stores):
    store = stores / "raw"
    want = reference_epoch(store, batch_size=25)
    loader = imgpack.Loader(store, 25, prefetch=2, threads=2, **SMALL)
    it = iter(loader)
    next(it)
    workers = DataLoader(OneRecord(loader), batch_size=4, num_workers=2,
                         multiprocessing_context="fork")
    got = torch.cat(list(workers)).numpy()
    ref = imgpack.Loader(store, 12, **SMALL)
    assert np.array_equal(got, ref.batch(range(12))[0])
    # The parent's iterator was not disturbed by the workers.
    assert all(np.array_equal(images, w)
               for (images, _), w in zip(it, want[1:]))


def test_prefetch_errors_name_the_record(tmp_path):
    store = synthetic_store.write(tmp_path / "bad", 20, bad={9})
    loader = imgpack.Loader(store, 4, shuffle=False, dtype="uint8",
                            layout="NHWC", prefetch=3, threads=2)
    seen = []
    with pytest.raises(imgpack.ImgpackError) as err:
        for images, _ in loader:
            seen += [synthetic_store.index_of(im) for im in images]
    assert "record 9" in str(err.value) and seen == list(range(8))
    assert lib.imgpack_batcher_in_flight(loader._batcher) == 0
    assert synthetic_store.index_of(loader.batch([12])[0][0]) == 12


def test_pin_memory_and_dtype_choices(stores):
    store = stores / "raw"
    if torch.cuda.is_available():
        loader = imgpack.Loader(store, 8, pin_memory=True, output="torch",
                                **SMALL)
        images, labels = next(iter(loader))
        assert images.is_pinned() and labels.is_pinned()
    else:
        with pytest.warns(RuntimeWarning, match="pin_memory"):
            loader = imgpack.Loader(store, 8, pin_memory=True,
                                    output="torch", **SMALL)
        images, labels = next(iter(loader))
        assert not images.is_pinned()
    assert labels.dtype == torch.int64
    loader.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="bfloat16"):
            imgpack.Loader(store, 8, **dict(SMALL, dtype="bfloat16"))
    with pytest.raises(ValueError, match="crop"):
        imgpack.Loader(store, 8, crop_mode="random_resized")
    with pytest.raises(ValueError, match="scale"):
        imgpack.Loader(store, 8, **dict(SMALL, scale=(0.5, 0.1)))
