"""imgpack: read imgpack stores at training time, from Python.

A ctypes binding of libimgpack (no compiled extension): it loads the
installed library, or in a source checkout the one in ``build/``, or the
file ``IMGPACK_LIBRARY`` names (``_lib.py`` says exactly which, and why
never a sanitizer build by itself); the library must be this package's
version.

- ``Dataset(path, transform=None)``: map-style, ``ds[i] -> (HWC uint8
  array, label)``; works as a torch Dataset, also in forked DataLoader
  workers.
- ``Loader(path, batch_size, ...)``: iterates ``(images, labels)`` numpy
  batches made in C (uint8 or normalized float32, NCHW or NHWC), in
  DistributedSampler order; its default mean/std are those ``imgpack
  stats`` stored, else ImageNet's (``stored_stats(path)``).
- ``Reader``: the store handle beneath both; ``epoch_indices``: the
  sampler alone.
- ``EpochSampler`` and ``PrefetchBatchSampler``: the same order for a
  torch DataLoader over a Dataset, with each batch read ahead for its
  worker.
- ``select(path, where, params)``: the indices of a subset, by a SQL
  WHERE clause on the catalog, for Dataset's ``indices=`` and Loader's
  ``subset=``;
  ``load_indices``: an ``imgpack select -o`` file.
- ``weighted_indices``, ``balanced_weights``: weighted sampling with
  replacement (the Loader's ``sampling="balanced"`` / ``weights=``).
"""

from ._lib import VERSION as __version__, ImgpackError
from .loader import (IMAGENET_MEAN, IMAGENET_STD, Loader, epoch_indices,
                     stored_stats)
from .reader import Dataset, Reader
from .sampler import EpochSampler, PrefetchBatchSampler
from .weighted import balanced_weights, weighted_indices
from .select import load_indices, select

__all__ = ["Dataset", "Loader", "Reader", "ImgpackError", "epoch_indices",
           "EpochSampler", "PrefetchBatchSampler",
           "IMAGENET_MEAN", "IMAGENET_STD", "stored_stats", "__version__",
           "select", "load_indices", "weighted_indices", "balanced_weights"]
