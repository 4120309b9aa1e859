"""The random augmentation of one record, as the Loader's RandomResizedCrop
cuts it: imgpack_augment_params, for checking a batch against torchvision
or reproducing one image outside imgpack."""

import ctypes
import math

from . import _lib
from ._lib import ImgpackError, lib

# torchvision's RandomResizedCrop defaults (IMGPACK_RRC_* in reader.h).
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)

_MASK = (1 << 64) - 1


def ranges(scale, ratio):
    """``scale`` and ``ratio`` as two (min, max) float pairs, each finite
    with 0 < min <= max, or ValueError naming the bad one."""
    pairs = []
    for name, pair in (("scale", scale), ("ratio", ratio)):
        low, high = (float(x) for x in pair)
        if not (math.isfinite(low) and math.isfinite(high)
                and 0 < low <= high):
            raise ValueError("%s must be (min, max) with 0 < min <= max, "
                             "not %r" % (name, tuple(pair)))
        pairs.append((low, high))
    return pairs


def augment_params(seed, epoch, index, width, height, scale=SCALE,
                   ratio=RATIO, flip=True):
    """The RandomResizedCrop box and flip a Loader with
    ``crop_mode="random_resized"`` and the same seed, scale, ratio and
    flip gives record ``index`` (its index in the store) of size
    ``width`` x ``height`` in epoch ``epoch``: ``(top, left, height,
    width, flipped)``. The image is then exactly
    ``torchvision.transforms.functional.resized_crop(record, top, left,
    height, width, size, BILINEAR)``, horizontally flipped if ``flipped``.
    The box follows torchvision's ``RandomResizedCrop.get_params``; the
    random numbers are imgpack's (include/imgpack/reader.h), not torch's."""
    (scale_min, scale_max), (ratio_min, ratio_max) = ranges(scale, ratio)
    out = _lib.Augment()
    status = lib.imgpack_augment_params(
        seed & _MASK, epoch & _MASK, index, width, height, scale_min,
        scale_max, ratio_min, ratio_max, int(bool(flip)), ctypes.byref(out))
    if status != _lib.OK:
        raise ImgpackError(status, "record %d of %d x %d pixels"
                           % (index, width, height))
    return out.top, out.left, out.height, out.width, bool(out.flip)
