"""RandomResizedCrop batches against torchvision, byte for byte.

The shared sample is packed with --crop 0 (short side 256, whole image)
raw and as JPEG q90; a batcher with IMGPACK_CROP_RANDOM_RESIZED and flips
fills batches of every record, and each image must equal
torchvision.transforms.functional.resized_crop(PIL image of the record,
top, left, h, w, [224, 224], BILINEAR), then hflip when flipped, with the
box and flip that imgpack_augment_params reports. The float types must
equal torch's ToTensor + Normalize of that image, and .half() /
.bfloat16() of it, bit for bit."""
import ctypes
import io

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

import imgpack
from imgpack import _lib
from imgpack._lib import lib
from conftest import SAMPLE, pack

SIDE = 224
SEED, EPOCH = 20261202, 3
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    pack(SAMPLE, root / "raw", "--crop", "0", "--jobs", "2")
    pack(SAMPLE, root / "jpeg", "--crop", "0", "--format", "jpeg",
         "--quality", "90", "--jobs", "2")
    return root


def make_batcher(reader, dtype=_lib.DTYPE_UINT8, layout=_lib.LAYOUT_NHWC,
                 threads=2, mean=None, std=None, scale=SCALE, ratio=RATIO,
                 size=(SIDE, SIDE)):
    """A RandomResizedCrop batcher with flips; size is (height, width)."""
    opts = _lib.c_opts_p()
    _lib.check(lib.imgpack_batch_options_create(ctypes.byref(opts)),
               lambda: "out of memory")
    try:
        assert lib.imgpack_batch_options_set_crop(
            opts, size[1], size[0], _lib.CROP_RANDOM_RESIZED) == _lib.OK
        assert lib.imgpack_batch_options_set_random_resized(
            opts, *scale, *ratio) == _lib.OK
        assert lib.imgpack_batch_options_set_dtype(opts, dtype) == _lib.OK
        assert lib.imgpack_batch_options_set_layout(opts, layout) == _lib.OK
        assert lib.imgpack_batch_options_set_flip(opts, 1) == _lib.OK
        assert lib.imgpack_batch_options_set_threads(opts, threads) == _lib.OK
        if mean is not None:
            m = np.array(mean, np.float32)
            s = np.array(std, np.float32)
            assert lib.imgpack_batch_options_set_normalize(
                opts, m.ctypes.data_as(_lib.f32_p),
                s.ctypes.data_as(_lib.f32_p), m.size) == _lib.OK
        b = _lib.c_batcher_p()
        status = lib.imgpack_batcher_create(ctypes.byref(b), reader._handle,
                                            opts)
        assert status == _lib.OK, lib.imgpack_batcher_errmsg(b)
        return b
    finally:
        lib.imgpack_batch_options_destroy(opts)


def run(b, indices, out):
    indices = np.ascontiguousarray(indices, np.uint64)
    labels = np.empty(indices.size, np.int64)
    status = lib.imgpack_batcher_run(
        b, indices.ctypes.data_as(_lib.u64_p), indices.size, SEED, EPOCH,
        out.ctypes.data, out.nbytes, labels.ctypes.data_as(_lib.i64_p))
    assert status == _lib.OK, lib.imgpack_batcher_errmsg(b)
    return labels


def params(index, width, height, scale=SCALE, ratio=RATIO):
    a = _lib.Augment()
    assert lib.imgpack_augment_params(
        SEED, EPOCH, index, width, height, *scale, *ratio, 1,
        ctypes.byref(a)) == _lib.OK
    return a


def pil_image(reader, index):
    """The PIL image of a record: the raw pixels, or the JPEG decoded."""
    payload, rec = reader.get(index)
    if rec.format == _lib.FORMAT_RAW:
        pixels = np.frombuffer(payload, np.uint8)
        return Image.fromarray(pixels.reshape(rec.height, rec.width,
                                              rec.channels)), rec
    return Image.open(io.BytesIO(payload)).convert("RGB"), rec


def expected(reader, index, scale=SCALE, ratio=RATIO, size=(SIDE, SIDE)):
    image, rec = pil_image(reader, index)
    a = params(index, rec.width, rec.height, scale, ratio)
    out = F.resized_crop(image, a.top, a.left, a.height, a.width,
                         list(size), InterpolationMode.BILINEAR)
    if a.flip:
        out = F.hflip(out)
    return np.array(out), a, rec


@pytest.mark.parametrize("kind", ["raw", "jpeg"])
def test_uint8_equals_torchvision_resized_crop(stores, kind):
    reader = imgpack.Reader(stores / kind)
    n = len(reader)
    assert n == 300
    b = make_batcher(reader)
    try:
        # Every record, in an order unlike the store's.
        order = np.random.default_rng(1).permutation(n)
        out = np.empty((n, SIDE, SIDE, 3), np.uint8)
        labels = run(b, order, out)
    finally:
        lib.imgpack_batcher_destroy(b)
    flips = down = up = 0
    for k, index in enumerate(order):
        want, a, rec = expected(reader, int(index))
        assert np.array_equal(out[k], want), (kind, index, a.top, a.left,
                                              a.height, a.width, a.flip)
        assert labels[k] == rec.label
        flips += a.flip
        down += a.width > SIDE and a.height > SIDE
        up += a.width < SIDE and a.height < SIDE
    # Flips near half the records; boxes both shrunk and enlarged.
    assert 110 < flips < 190 and down > 20 and up > 20


def test_float_types_equal_torch(stores):
    """float32 = Normalize(ToTensor(image)); float16 and bfloat16 = its
    .half() and .bfloat16(), in NCHW and NHWC, on 40 records."""
    reader = imgpack.Reader(stores / "raw")
    indices = np.arange(0, 300, 7)[:40]
    mean, std = imgpack.IMAGENET_MEAN, imgpack.IMAGENET_STD
    ref = torch.stack([F.normalize(F.to_tensor(expected(reader, int(i))[0]),
                                   mean, std) for i in indices])
    cases = [(_lib.DTYPE_FLOAT32, np.float32, torch.float32, np.int32),
             (_lib.DTYPE_FLOAT16, np.float16, torch.float16, np.int16),
             (_lib.DTYPE_BFLOAT16, np.uint16, torch.bfloat16, np.int16)]
    for dtype, np_type, torch_type, bits in cases:
        want = ref.to(torch_type).view(torch.int32 if bits is np.int32
                                       else torch.int16).numpy()
        for layout in (_lib.LAYOUT_NCHW, _lib.LAYOUT_NHWC):
            b = make_batcher(reader, dtype, layout, threads=3)
            shape = (3, SIDE, SIDE) if layout == _lib.LAYOUT_NCHW \
                else (SIDE, SIDE, 3)
            out = np.empty((len(indices),) + shape, np_type)
            try:
                run(b, indices, out)
            finally:
                lib.imgpack_batcher_destroy(b)
            got = out.view(bits)
            if layout == _lib.LAYOUT_NHWC:
                got = got.transpose(0, 3, 1, 2)
            assert np.array_equal(got, want), (dtype, layout)


@pytest.mark.parametrize("mean,std", [((0.5,), (1e-5,)),   # past 65504
                                      ((0.0,), (3e4,)),    # subnormal
                                      ((0.3,), (7e-3,))])  # ties likelier
def test_16_bit_rounding_at_the_edges(stores, mean, std):
    """Values that overflow float16, fall in its subnormals, or need many
    ties rounded: still torch's .half() / .bfloat16() of the float32."""
    reader = imgpack.Reader(stores / "raw")
    indices = np.arange(8)
    ref = torch.stack([F.normalize(F.to_tensor(expected(reader, int(i))[0]),
                                   mean * 3, std * 3) for i in indices])
    for dtype, torch_type in ((_lib.DTYPE_FLOAT16, torch.float16),
                              (_lib.DTYPE_BFLOAT16, torch.bfloat16)):
        b = make_batcher(reader, dtype, _lib.LAYOUT_NCHW, mean=mean, std=std)
        out = np.empty((len(indices), 3, SIDE, SIDE), np.int16)
        try:
            run(b, indices, out)
        finally:
            lib.imgpack_batcher_destroy(b)
        want = ref.to(torch_type).view(torch.int16).numpy()
        assert np.array_equal(out, want), dtype


def test_other_ranges_and_sizes_equal_torchvision(stores):
    """scale and ratio other than the defaults, on the JPEG store: boxes
    past the image (scale up to 2) are drawn again, extreme ratios fall
    back to the clamped centre crop; outputs that are not square."""
    reader = imgpack.Reader(stores / "jpeg")
    for scale, ratio, size in (((0.5, 2.0), (0.9, 1.1), (SIDE, SIDE)),
                               ((0.01, 0.05), (3.0, 5.0), (SIDE, SIDE)),
                               (SCALE, RATIO, (150, 200))):
        b = make_batcher(reader, scale=scale, ratio=ratio, size=size)
        indices = np.arange(100, 130)
        out = np.empty((len(indices),) + size + (3,), np.uint8)
        try:
            run(b, indices, out)
        finally:
            lib.imgpack_batcher_destroy(b)
        for k, index in enumerate(indices):
            want, a, _ = expected(reader, int(index), scale, ratio, size)
            assert np.array_equal(out[k], want), (scale, ratio, size, index)
