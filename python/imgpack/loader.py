"""Batches for training: the Loader iterates (images, labels) numpy
batches, each filled by one C call (imgpack_batcher_run) on a pool of C
threads, in the epoch order of a DistributedSampler."""

import ctypes
import json
import os
import sqlite3
import sys
import threading

import numpy as np

from . import _lib
from ._lib import ImgpackError, lib
from .reader import Reader
from .weighted import balanced_weights, weighted_indices
from .subset import Subset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MASK = (1 << 64) - 1


def stored_stats(path):
    """The (mean, std) that ``imgpack stats`` stored in the catalog of the
    store at ``path`` (dataset keys ``mean`` and ``std``, JSON arrays), or
    None when there are none or no readable catalog."""
    catalog = os.path.join(str(path), "catalog.db")
    if not os.path.exists(catalog):
        return None
    try:
        db = sqlite3.connect("file:%s?mode=ro" % catalog, uri=True)
        try:
            rows = dict(db.execute(
                "SELECT key, value FROM dataset WHERE key IN ('mean', 'std')"))
        finally:
            db.close()
        if len(rows) != 2:
            return None
        return tuple(json.loads(rows["mean"])), tuple(json.loads(rows["std"]))
    except (sqlite3.Error, ValueError, TypeError):
        return None


def epoch_indices(n, epoch=0, seed=0, shuffle=True, rank=0, world_size=1,
                  drop_last=False, window=0):
    """The record indices rank ``rank`` reads in epoch ``epoch``, as a
    uint64 array: DistributedSampler's partition (pad by repeating the
    start, or drop the tail; then every ``world_size``-th from ``rank``)
    over 0..n-1 or a permutation seeded by (seed, epoch). The permutation
    is imgpack's own generator, not torch's.

    ``window`` W > 1: shuffle windows of W consecutive records and the
    records within each window instead of all records at once, for disks
    and network file systems; neighbours in the store then arrive close
    together (with an ImageFolder source a window is mostly one class).
    See imgpack_sampler_indices_windowed in imgpack/reader.h."""
    count = lib.imgpack_sampler_count(n, world_size, int(drop_last))
    out = np.empty(count, np.uint64)
    status = lib.imgpack_sampler_indices_windowed(
        n, seed & _MASK, epoch & _MASK, int(shuffle), window, rank,
        world_size, int(drop_last), out.ctypes.data_as(_lib.u64_p), count)
    if status != _lib.OK:
        raise ImgpackError(status, "rank %d of %d, %d records"
                           % (rank, world_size, n))
    return out


class Loader:
    """Iterates ``(images, labels)`` numpy batches of a store.

    images: ``layout`` 'NCHW' or 'NHWC', ``dtype`` 'float32' (ToTensor +
    Normalize(mean, std), torch's float32 arithmetic, bit for bit) or
    'uint8' (the stored pixels). ``mean``/``std`` default to what
    ``imgpack stats`` stored for this store, else ImageNet's constants
    (IMAGENET_MEAN, IMAGENET_STD); ``self.mean``/``self.std`` say which.
    labels: int64. ``torch.from_numpy`` wraps
    a batch without a copy. A batch stays valid as long as anything refers
    to it (the array, a view or a tensor of it); the Loader refills an
    earlier batch's memory only once nothing does, which spares the page
    faults of a fresh 150 MB array per batch.

    Order: ``shuffle``/``seed``/``epoch``/``rank``/``world_size`` as
    torch's DistributedSampler (call ``set_epoch(e)`` before each epoch;
    the permutation differs from torch's, the partition rule does not).
    ``drop_last``: drop the sampler's uneven tail instead of padding, and
    the last partial batch too, so every batch is full.

    Subsets: ``subset`` (record indices, e.g. from ``imgpack.select``;
    any order, repeats allowed) restricts the Loader to those records;
    ``len``, epochs, shuffling and rank partitions are over positions in
    the subset. Labels stay the store's class ids
    unless ``relabel``: then the subset's classes are renumbered 0..k-1 in
    store order, and ``classes`` lists the kept names in that order.

    Weighted sampling: ``sampling="balanced"`` (every class equally likely
    per draw) or ``weights`` (one value >= 0 per record, or per position of
    ``subset``) draws ``num_samples`` records per epoch (default: as many
    as there are) with replacement, seeded by (seed, epoch), ``num_samples``
    rounded up to a multiple of ``world_size`` and dealt out to the ranks
    (imgpack_sampler_weighted); ``shuffle`` does not apply.

    ``crop``: None (the record size; required for stores packed with
    --crop 0), an int or (height, width); ``crop_mode`` 'center' or
    'random'. ``flip``: random horizontal flips. Crops and flips depend on
    (seed, epoch, rank, batch) only. ``threads``: C threads filling a
    batch, the calling thread included; 0 = all online cores.

    ``order_window`` W > 1: the windowed epoch order of ``epoch_indices``
    (for disks and network file systems). Each batch's records are read
    ahead as a whole, and the next batch's while the current one is in
    use (``Reader.prefetch``).
    """

    def __init__(self, path, batch_size, shuffle=True, seed=0, epoch=0,
                 rank=0, world_size=1, drop_last=False, layout="NCHW",
                 dtype="float32", mean=None, std=None,
                 flip=False, crop=None, crop_mode="center", threads=0,
                 verify=False, order_window=0, subset=None, relabel=False,
                 sampling=None, weights=None, num_samples=None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if sampling not in (None, "balanced") or (sampling and weights
                                                  is not None):
            raise ValueError("sampling is None or 'balanced'; weights "
                             "replace it, not join it")
        if num_samples is not None and sampling is None and weights is None:
            raise ValueError("num_samples needs sampling='balanced' or "
                             "weights")
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in [0, world_size)")
        layouts = {"NCHW": _lib.LAYOUT_NCHW, "NHWC": _lib.LAYOUT_NHWC}
        dtypes = {"float32": _lib.DTYPE_FLOAT32, "uint8": _lib.DTYPE_UINT8}
        modes = {"center": _lib.CROP_CENTER, "random": _lib.CROP_RANDOM}
        if layout not in layouts or str(np.dtype(dtype)) not in dtypes \
                or crop_mode not in modes:
            raise ValueError("layout must be NCHW or NHWC, dtype float32 or "
                             "uint8, crop_mode center or random")
        if mean is None or std is None:
            stored = stored_stats(path) or (IMAGENET_MEAN, IMAGENET_STD)
            mean = stored[0] if mean is None else mean
            std = stored[1] if std is None else std
        self.mean, self.std = mean, std
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.order_window = order_window
        self.layout = layout
        self.dtype = np.dtype(dtype)
        self._reader = Reader(path, verify=verify)
        self._batcher = None
        self._subset = Subset(self._reader, subset, relabel)
        self._weights = self._sampling_weights(sampling, weights)
        self.epoch_samples = len(self._subset) if num_samples is None \
            else int(num_samples)
        self._spare = []  # earlier batches, refilled once unreferenced
        opts = _lib.c_opts_p()
        _lib.check(lib.imgpack_batch_options_create(ctypes.byref(opts)),
                   lambda: "out of memory")
        try:
            self._configure(opts, layouts[layout], dtypes[str(self.dtype)],
                            mean, std, flip, crop, modes[crop_mode], threads)
            batcher = _lib.c_batcher_p()
            status = lib.imgpack_batcher_create(
                ctypes.byref(batcher), self._reader._handle, opts)
            if status != _lib.OK:
                message = lib.imgpack_batcher_errmsg(batcher).decode()
                lib.imgpack_batcher_destroy(batcher)
                raise ImgpackError(status, message)
            self._batcher = batcher
        finally:
            lib.imgpack_batch_options_destroy(opts)
        b = self._batcher
        h, w, c = (lib.imgpack_batcher_height(b), lib.imgpack_batcher_width(b),
                   lib.imgpack_batcher_channels(b))
        self.image_shape = (c, h, w) if layout == "NCHW" else (h, w, c)

    def _sampling_weights(self, sampling, weights):
        """The per-position weights of weighted sampling, or None."""
        if sampling == "balanced":
            return balanced_weights(self._subset.store_labels())
        if weights is None:
            return None
        weights = np.ascontiguousarray(weights, np.float64).ravel()
        if weights.size != len(self._subset):
            raise ValueError("weights has %d values for %d records"
                             % (weights.size, len(self._subset)))
        return weights

    @staticmethod
    def _configure(opts, layout, dtype, mean, std, flip, crop, mode,
                   threads):
        def setting(status, what):
            if status != _lib.OK:
                raise ValueError("invalid %s" % what)
        setting(lib.imgpack_batch_options_set_layout(opts, layout), "layout")
        setting(lib.imgpack_batch_options_set_dtype(opts, dtype), "dtype")
        mean = np.ascontiguousarray(np.atleast_1d(mean), np.float32)
        std = np.ascontiguousarray(np.atleast_1d(std), np.float32)
        if mean.shape != std.shape:
            raise ValueError("mean and std differ in length")
        setting(lib.imgpack_batch_options_set_normalize(
            opts, mean.ctypes.data_as(_lib.f32_p),
            std.ctypes.data_as(_lib.f32_p), mean.size), "mean/std")
        if crop is not None:
            ch, cw = (crop, crop) if np.isscalar(crop) else crop
            setting(lib.imgpack_batch_options_set_crop(opts, cw, ch, mode),
                    "crop")
        setting(lib.imgpack_batch_options_set_flip(opts, int(bool(flip))),
                "flip")
        setting(lib.imgpack_batch_options_set_threads(opts, threads),
                "threads")

    def close(self):
        self._join_read_ahead()
        if self._batcher:
            lib.imgpack_batcher_destroy(self._batcher)
            self._batcher = None
        self._reader.close()

    def __del__(self):
        if getattr(self, "_batcher", None):
            self.close()

    def set_epoch(self, epoch):
        self.epoch = epoch

    @property
    def num_samples(self):
        """Records this rank reads per epoch."""
        if self._weights is not None:
            return lib.imgpack_sampler_count(self.epoch_samples,
                                             self.world_size, 0)
        return lib.imgpack_sampler_count(len(self._subset), self.world_size,
                                         int(self.drop_last))

    def __len__(self):
        n = self.num_samples
        return n // self.batch_size if self.drop_last else \
            -(-n // self.batch_size)

    @property
    def classes(self):
        return self._subset.classes

    @property
    def info(self):
        return self._reader.info

    def indices(self):
        """This rank's record indices for the current epoch, in order."""
        if self._weights is not None:
            positions = weighted_indices(self._weights, self.epoch_samples,
                                         self.epoch, self.seed, self.rank,
                                         self.world_size)
        else:
            positions = epoch_indices(len(self._subset), self.epoch,
                                      self.seed, self.shuffle, self.rank,
                                      self.world_size, self.drop_last,
                                      self.order_window)
        return self._subset.records(positions)

    def _batch_seed(self, number):
        x = (self.seed * 0x9E3779B97F4A7C15 + self.epoch * 0xBF58476D1CE4E5B9
             + self.rank * 0x94D049BB133111EB + number) & _MASK
        return x

    # References to a spare array nobody else holds: the list's, the loop
    # variable's and getrefcount's own argument.
    _UNREFERENCED = 3

    def _output(self, shape):
        for array in self._spare:
            if array.shape == shape and \
                    sys.getrefcount(array) <= self._UNREFERENCED:
                return array
        array = np.empty(shape, self.dtype)
        self._spare = self._spare[-1:] + [array]
        return array

    def batch(self, indices, seed=0):
        """Fills one batch for the given record indices: (images, labels)."""
        indices = np.ascontiguousarray(indices, np.uint64)
        n = indices.size
        images = self._output((n,) + self.image_shape)
        labels = np.empty(n, np.int64)
        status = lib.imgpack_batcher_run(
            self._batcher, indices.ctypes.data_as(_lib.u64_p), n,
            seed & _MASK, images.ctypes.data, images.nbytes,
            labels.ctypes.data_as(_lib.i64_p))
        if status != _lib.OK:
            raise ImgpackError(status, lib.imgpack_batcher_errmsg(
                self._batcher).decode(errors="replace"))
        return images, self._subset.map_labels(labels)

    def __iter__(self):
        order = self.indices()
        for number in range(len(self)):
            chunk = order[number * self.batch_size:
                          (number + 1) * self.batch_size]
            images, labels = self.batch(chunk, self._batch_seed(number))
            self._read_ahead(order[(number + 1) * self.batch_size:
                                   (number + 2) * self.batch_size])
            yield images, labels

    def _read_ahead(self, indices):
        """Asks for the next batch's records on a thread of its own, while
        the caller uses this batch: under a memory limit the kernel frees
        page cache for them inside the call, which takes as long as
        converting the batch (ctypes lets the GIL go meanwhile)."""
        self._join_read_ahead()
        if len(indices):
            self._ahead = threading.Thread(
                target=self._reader.prefetch, args=(indices,),
                name="imgpack-readahead", daemon=True)
            self._ahead.start()

    def _join_read_ahead(self):
        if getattr(self, "_ahead", None) is not None:
            self._ahead.join()
            self._ahead = None
