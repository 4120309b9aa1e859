"""imgpack: read imgpack stores at training time, from Python.

A ctypes binding of libimgpack (no compiled extension): it loads the
installed library, or in a source checkout the one in ``build/``, or the
file ``IMGPACK_LIBRARY`` names (``_lib.py`` says exactly which, and why
never a sanitizer build by itself); the library must be this package's
version.

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
- ``EpochSampler`` and ``PrefetchBatchSampler``: the same order for a
  torch DataLoader over a Dataset, with each batch read ahead for its
  worker.
- ``select(path, where, params)``: the indices of a subset, by a SQL
  WHERE clause on the catalog, for Dataset's ``indices=`` and Loader's
  ``subset=``;
  ``load_indices``: an ``imgpack select -o`` file.
- ``verify(path, sources=None)``: what ``imgpack verify`` finds, as a
  list of Problems.
- ``weighted_indices``, ``balanced_weights``: weighted sampling with
  replacement (the Loader's ``sampling="balanced"`` / ``weights=``).
"""

from ._lib import VERSION as __version__, ImgpackError
from .augment import augment_params
from .catalog import Problem, stored_stats, verify
from .loader import IMAGENET_MEAN, IMAGENET_STD, Loader, epoch_indices
from .reader import Dataset, Reader
from .sampler import EpochSampler, PrefetchBatchSampler
from .weighted import balanced_weights, weighted_indices
from .select import load_indices, select

__all__ = ["Dataset", "Loader", "Reader", "ImgpackError", "epoch_indices",
           "EpochSampler", "PrefetchBatchSampler", "augment_params",
           "IMAGENET_MEAN", "IMAGENET_STD", "stored_stats", "__version__",
           "select", "load_indices", "weighted_indices", "balanced_weights",
           "verify", "Problem"]
