"""imgpack: read imgpack stores at training time, from Python.

A ctypes binding of libimgpack (no compiled extension): set
IMGPACK_LIBRARY to the library's path, or build it in this checkout's
``build/`` directory.

- ``Dataset(path, transform=None)``: map-style, ``ds[i] -> (HWC uint8
  array, label)``; works as a torch Dataset, also in forked DataLoader
  workers.
- ``Loader(path, batch_size, ...)``: iterates ``(images, labels)``
  batches made in C -- numpy arrays or torch tensors; uint8 or normalized
  float32/float16/bfloat16, NCHW or NHWC; center crops, random crops or
  RandomResizedCrop, flips -- in DistributedSampler order or the caller's,
  optionally prefetched by C threads; resumable mid-epoch
  (``state_dict``). Its mean/std are ImageNet's unless given
  (``mean="store"``: those ``imgpack stats`` stored, ``stored_stats``).
- ``augment_params``: the RandomResizedCrop box and flip of one record.
- ``Reader``: the store handle beneath both; ``epoch_indices``: the
  sampler alone.
"""

from ._lib import ImgpackError, lib as _clib
from .augment import augment_params
from .loader import (IMAGENET_MEAN, IMAGENET_STD, Loader, epoch_indices,
                     stored_stats)
from .reader import Dataset, Reader

__version__ = _clib.imgpack_version().decode()

__all__ = ["Dataset", "Loader", "Reader", "ImgpackError", "epoch_indices",
           "augment_params", "IMAGENET_MEAN", "IMAGENET_STD", "stored_stats",
           "__version__"]
