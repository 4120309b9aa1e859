"""imgpack_augment_params against torchvision's RandomResizedCrop.get_params.

The generators differ (imgpack's splitmix64, torch's mt19937), so the
boxes are compared as distributions: 100,000 draws per image shape on
each side, and the two-sample Kolmogorov-Smirnov distance of the area
fraction, the log aspect ratio and the box centre must stay below what
equal distributions exceed with probability about 1e-6. Where no box
fits (3000x20, 20x3000) both must fall back to the same centre crop,
every time; on 3000x300 most draws fall back and the rates must agree.
torchvision's get_params runs in Python (about 20 us a call), so the
shapes where nearly every draw is a fallback take 20,000 draws."""
import ctypes
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from imgpack import _lib
from imgpack._lib import lib

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)
DRAWS = 100_000
# Two-sample KS at n = m = 100,000: P(D > c * sqrt(2/n)) ~ 2 exp(-2 c^2),
# 1e-6 at c = 2.7. Ties (integer boxes) only make D smaller.
KS_LIMIT = 2.7 * math.sqrt(2 / DRAWS)


def imgpack_boxes(width, height, n, scale=SCALE, ratio=RATIO):
    out = np.empty((n, 4), np.int64)
    a = _lib.Augment()
    fn = lib.imgpack_augment_params
    for i in range(n):
        assert fn(1234, 5, i, width, height, *scale, *ratio, 0,
                  ctypes.byref(a)) == _lib.OK
        out[i] = (a.top, a.left, a.height, a.width)
    return out


def torchvision_boxes(width, height, n, scale=SCALE, ratio=RATIO):
    torch.manual_seed(0)
    image = Image.new("RGB", (width, height))
    return np.array([RandomResizedCrop.get_params(image, list(scale),
                                                  list(ratio))
                     for _ in range(n)], np.int64)


def ks(a, b):
    """Two-sample Kolmogorov-Smirnov distance."""
    a, b = np.sort(a), np.sort(b)
    at = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, at, side="right") / a.size
                         - np.searchsorted(b, at, side="right") / b.size))


def features(boxes, width, height):
    top, left, h, w = boxes.T.astype(np.float64)
    return {"area fraction": w * h / (width * height),
            "log ratio": np.log(w / h),
            "centre x": (left + w / 2) / width,
            "centre y": (top + h / 2) / height}


@pytest.mark.parametrize("width,height", [(500, 375), (256, 341),
                                          (40, 30)])
def test_box_distribution_matches_get_params(width, height):
    ours = features(imgpack_boxes(width, height, DRAWS), width, height)
    theirs = features(torchvision_boxes(width, height, DRAWS), width, height)
    for name in ours:
        d = ks(ours[name], theirs[name])
        assert d < KS_LIMIT, (name, d, KS_LIMIT)
    # Quantiles, for a readable failure: within 0.01 of the range. (Not
    # on 40x30, whose few box sizes make quantiles jump by more.)
    for name in ("area fraction", "log ratio") if width > 100 else ():
        q = np.linspace(0.01, 0.99, 99)
        assert np.allclose(np.quantile(ours[name], q),
                           np.quantile(theirs[name], q), atol=0.01), name


@pytest.mark.parametrize("width,height", [(3000, 20), (20, 3000)])
def test_fallback_where_nothing_fits(width, height):
    n = 20_000
    ours = imgpack_boxes(width, height, n)
    theirs = torchvision_boxes(width, height, 2_000)
    # Every draw falls back, to one box: torchvision's.
    assert (theirs == theirs[0]).all()
    assert (ours == theirs[0]).all()


def test_fallback_rate():
    """On 3000x300 a box fits in about 1 draw in 40, so about 3 in 4
    samples fall back after 10 attempts; the rates must agree within
    five standard deviations of their difference."""
    width, height, n = 3000, 300, 20_000
    ours = imgpack_boxes(width, height, n)
    theirs = torchvision_boxes(width, height, n)
    fallback = np.array([0, (width - 400) // 2, 300, 400])
    p = (ours == fallback).all(axis=1).mean()
    q = (theirs == fallback).all(axis=1).mean()
    assert 0.6 < q < 0.9
    assert abs(p - q) < 5 * math.sqrt(2 * q * (1 - q) / n), (p, q)
    # The boxes that did fit agree in size too.
    fit_ours = ours[~(ours == fallback).all(axis=1)]
    fit_theirs = theirs[~(theirs == fallback).all(axis=1)]
    for k in (2, 3):
        d = ks(fit_ours[:, k], fit_theirs[:, k])
        n_eff = min(len(fit_ours), len(fit_theirs))
        assert d < 2.7 * math.sqrt(2 / n_eff), (k, d)
