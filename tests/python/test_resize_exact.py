"""Byte-for-byte comparison of imgpack's Resize + CenterCrop with torchvision.

The reference is torchvision.transforms.Compose([Resize(r), CenterCrop(c)])
on a PIL image (Pillow's antialiased bilinear resampling); imgpack's side is
the internal tool tests/tools/resize_dump, fed a PPM/PGM. Cases: a seeded mix
of edge cases and random sizes, gray and RGB, noise and smooth content, run
through both the vector and the scalar kernels; then the real images of the
shared ImageNet sample as Pillow decodes them.

Environment (set by tests/CMakeLists.txt): IMGPACK_TEST_TOOLS, the directory
holding resize_dump; IMGPACK_SAMPLE_DIR, the sample in ImageFolder layout.
"""
import glob
import io
import os
import random
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image
import torchvision.transforms as T

TOOL = os.path.join(os.environ.get("IMGPACK_TEST_TOOLS", "build/tests"),
                    "resize_dump")
SAMPLE_DIR = os.environ.get("IMGPACK_SAMPLE_DIR", "")


def reference(img, resize, crop):
    """What torchvision gives for Resize(resize) + CenterCrop(crop), 0 = off."""
    stages = []
    if resize:
        stages.append(T.Resize(resize))
    if crop:
        stages.append(T.CenterCrop(crop))
    return np.asarray(T.Compose(stages)(img) if stages else img)


def pnm(arr):
    """A binary PGM (2-D) or PPM (H x W x 3) of a uint8 array."""
    magic = b"P5" if arr.ndim == 2 else b"P6"
    header = b"%s\n%d %d\n255\n" % (magic, arr.shape[1], arr.shape[0])
    return header + np.ascontiguousarray(arr).tobytes()


def run_tool(data, resize, crop, scalar=False):
    args = [TOOL] + (["--scalar"] if scalar else []) + [str(resize), str(crop)]
    proc = subprocess.run(args, input=data, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.asarray(Image.open(io.BytesIO(proc.stdout)))


def assert_same(got, want, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if not np.array_equal(got, want):
        diff = np.argwhere(got != want)
        first = tuple(diff[0])
        pytest.fail(f"{what}: {len(diff)} bytes differ, first at {first}: "
                    f"{got[first]} != {want[first]}")


def content(rng, kind, w, h, channels):
    shape = (h, w) if channels == 1 else (h, w, channels)
    if kind == "noise":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if kind == "white":
        return np.full(shape, 255, dtype=np.uint8)
    if kind == "checker":
        y, x = np.mgrid[0:h, 0:w]
        board = (((x + y) % 2) * 255).astype(np.uint8)
        return board if channels == 1 else np.repeat(board[..., None], 3, -1)
    # Smooth: a gradient plus low-frequency waves, per channel.
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for _ in range(channels):
        fx, fy, phase = rng.uniform(0.001, 0.05, 2).tolist() + [rng.uniform(0, 6)]
        v = 127.5 + 90 * np.sin(fx * x * 6 + phase) * np.cos(fy * y * 6) \
            + 37 * (x / max(w - 1, 1) - y / max(h - 1, 1))
        planes.append(np.clip(np.rint(v), 0, 255).astype(np.uint8))
    return planes[0] if channels == 1 else np.stack(planes, -1)


def synthetic_cases():
    """(w, h, channels, resize, crop, kind), seeded: ~200 cases."""
    edge_sizes = [(500, 375), (375, 500), (640, 480), (1024, 768), (1, 1),
                  (3000, 20), (20, 3000), (100, 80), (256, 256), (256, 300),
                  (257, 259), (259, 257), (224, 224), (2, 3), (7, 1),
                  (1, 500), (1500, 1400), (255, 256), (4000, 3000)]
    pairs = [(256, 224), (0, 224), (256, 0), (0, 0), (288, 256), (64, 56)]
    rnd = random.Random(20240514)
    cases = []
    for i, (w, h) in enumerate(edge_sizes):
        resize, crop = pairs[i % len(pairs)]
        cases.append((w, h, 3 if i % 2 else 1, 256, 224, "noise"))
        cases.append((w, h, 1 if i % 2 else 3, resize, crop, "smooth"))
        cases.append((w, h, 3, 256, 224, "checker" if i % 3 else "white"))
    for w, h in [(100, 80), (101, 81), (300, 100), (60, 400)]:
        for channels in (1, 3):
            cases.append((w, h, channels, 0, 224, "noise"))
            cases.append((w, h, channels, 64, 224, "smooth"))
    while len(cases) < 200:
        if rnd.random() < 0.2:
            w, h = rnd.randint(1, 40), rnd.randint(1, 2000)
            if rnd.random() < 0.5:
                w, h = h, w
        else:
            w, h = rnd.randint(16, 1600), rnd.randint(16, 1600)
        resize, crop = rnd.choice(pairs + [(rnd.randint(1, 400),
                                            rnd.randint(1, 400))])
        cases.append((w, h, rnd.choice((1, 3)), resize, crop,
                      rnd.choice(("noise", "smooth"))))
    return cases


CASES = synthetic_cases()


@pytest.mark.parametrize("case", CASES,
                         ids=["%dx%d-c%d-r%d-k%d-%s" % c for c in CASES])
def test_synthetic(case):
    w, h, channels, resize, crop, kind = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    arr = content(rng, kind, w, h, channels)
    img = Image.fromarray(arr)
    assert img.mode == ("L" if channels == 1 else "RGB")
    want = reference(img, resize, crop)
    data = pnm(arr)
    assert_same(run_tool(data, resize, crop), want, "vector")
    assert_same(run_tool(data, resize, crop, scalar=True), want, "scalar")


def sample_images():
    return sorted(glob.glob(os.path.join(SAMPLE_DIR, "*", "*.JPEG")))


def test_sample_images():
    paths = sample_images()
    if not paths:
        pytest.skip(f"no sample images under {SAMPLE_DIR!r}")
    for i, path in enumerate(paths):
        # What torchvision's ImageFolder loader does: open, convert to RGB.
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        arr = np.asarray(img)
        data = pnm(arr)
        assert_same(run_tool(data, 256, 224), reference(img, 256, 224), path)
        # Every tenth image: gray, the scalar path, and other sizes too.
        if i % 10 == 0:
            gray = img.convert("L")
            assert_same(run_tool(pnm(np.asarray(gray)), 256, 224),
                        reference(gray, 256, 224), path + " (L)")
            assert_same(run_tool(data, 256, 224, scalar=True),
                        reference(img, 256, 224), path + " (scalar)")
            assert_same(run_tool(data, 288, 256), reference(img, 288, 256),
                        path + " (288/256)")
