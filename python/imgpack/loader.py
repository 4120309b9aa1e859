"""Batches for training: the Loader iterates (images, labels) batches,
numpy arrays or torch tensors, each filled by the C batcher on a pool of C
threads -- in the caller's thread (imgpack_batcher_run), or ahead of it
(imgpack_batcher_submit/wait) while the caller trains -- in the epoch
order of a DistributedSampler or an order the caller gives.

Randomness (the order's shuffle, crops, RandomResizedCrop boxes, flips)
is keyed by (seed, epoch, record index), so an epoch is the same images
whatever the batch size, thread count or prefetch depth, and a position
in it (``state_dict``) is all it takes to resume it exactly."""

import collections
import ctypes
import os
import threading
import weakref
import zlib

import numpy as np

from . import _lib, buffers
from ._lib import ImgpackError, lib
from .augment import RATIO, SCALE, ranges
from .catalog import stored_stats
from .reader import Reader
from .subset import Subset
from .weighted import balanced_weights, weighted_indices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MASK = (1 << 64) - 1


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
    """Iterates ``(images, labels)`` batches of a store.

    images: ``layout`` 'NCHW' or 'NHWC'; ``dtype`` 'float32' (ToTensor +
    Normalize(mean, std), torch's float32 arithmetic, bit for bit),
    'float16' / 'bfloat16' (that float32 value rounded once to nearest
    even: torch's ``.half()`` / ``.bfloat16()`` of it) or 'uint8' (the
    pixels). ``mean``/``std``: ImageNet's (IMAGENET_MEAN, IMAGENET_STD)
    unless given; ``mean="store"`` takes both from what ``imgpack stats``
    stored in the store's catalog (an error if there is none). labels:
    int64.

    ``output``: 'numpy' arrays or 'torch' tensors (torch.from_numpy of the
    same memory; bfloat16 exists only as a tensor, numpy has no such type).
    ``pin_memory``: pinned host memory, for ``.to("cuda",
    non_blocking=True)``, when CUDA is available; without CUDA it warns
    once and gives ordinary memory, as torch's DataLoader does.

    A batch stays valid as long as anything refers to it (the array or
    tensor, a view of it, a tensor made from it). The Loader allocates
    its buffers once, touching every page then, and refills one only once
    nothing refers to the batch it held (buffers.py).

    Order: ``shuffle``/``seed``/``epoch``/``rank``/``world_size`` as
    torch's DistributedSampler (call ``set_epoch(e)`` before each epoch;
    the permutation differs from torch's, the partition rule does not),
    or ``indices``: this rank's order given by the caller instead -- a
    sequence of record indices (any subset, repeats allowed), used every
    epoch, or a sampler (an object with ``set_epoch`` and ``__iter__``,
    such as torch's DistributedSampler), asked again each epoch; rank and
    world_size then stay at their defaults, shuffle does not apply.
    ``drop_last``: drop the sampler's uneven tail instead of padding, and
    the last partial batch too, so every batch is full.

    ``verify``: as for Reader (by default each record is checked in full,
    payload CRC included, the first time it is read; ``False`` skips the
    payload CRC).

    Subsets: ``subset`` (record indices, e.g. from ``imgpack.select``;
    any order, repeats allowed) restricts the Loader to those records;
    ``len``, epochs, shuffling and rank partitions are over positions in
    the subset. Labels stay the store's class ids unless ``relabel``:
    then the subset's classes are renumbered 0..k-1 in store order, and
    ``classes`` lists the kept names in that order.

    Weighted sampling: ``sampling="balanced"`` (every class equally likely
    per draw) or ``weights`` (one value >= 0 per record, or per position of
    ``subset``) draws ``num_samples`` records per epoch (default: as many
    as there are) with replacement, seeded by (seed, epoch), ``num_samples``
    rounded up to a multiple of ``world_size`` and dealt out to the ranks
    (imgpack_sampler_weighted); ``shuffle`` and ``order_window`` do not
    apply. Neither ``subset`` nor weighted sampling goes with ``indices``,
    which is the order itself.

    ``crop``: None (the record size; required for stores packed with
    --crop 0), an int or (height, width): the output size. ``crop_mode``
    'center' (CenterCrop), 'random' (RandomCrop) or 'random_resized'
    (RandomResizedCrop(crop, scale, ratio): the box of
    ``imgpack.augment_params``, resized with the packer's Pillow-exact
    bilinear filter). ``flip``: RandomHorizontalFlip. The crop and flip of
    record i in epoch e depend on (seed, e, i) alone.

    ``threads``: C threads filling a batch; 0 = all online cores.
    ``prefetch``: batches (0 to 16) filled in the background by C threads,
    without the GIL, while the caller trains; 0 fills each batch when the
    caller asks for it. Errors are raised where the caller iterates,
    naming the record. Breaking out of the loop, a new ``iter()``,
    ``close()`` or deleting the Loader stop the prefetch; a forked child
    (a DataLoader worker) does not inherit the parent's batches in flight.

    ``state_dict()``/``load_state_dict()``: the epoch and how far into it
    the caller got; loading it in a new process (even with other threads,
    prefetch or batch size) makes the next ``iter()`` give exactly the rest
    of that epoch.

    ``order_window`` W > 1: the windowed epoch order of ``epoch_indices``
    (for disks and network file systems). Each batch's records are read
    ahead as a whole, and the next batch's while the current one is in
    use (``Reader.prefetch``).

    One thread at a time may use a Loader (its batcher's rule); one
    iterator at a time runs: a new ``iter()`` stops the previous one.
    """

    def __init__(self, path, batch_size, shuffle=True, seed=0, epoch=0,
                 rank=0, world_size=1, drop_last=False, layout="NCHW",
                 dtype="float32", mean=None, std=None, flip=False, crop=None,
                 crop_mode="center", scale=SCALE, ratio=RATIO, threads=0,
                 prefetch=0, indices=None, output="numpy", pin_memory=False,
                 verify=True, order_window=0, subset=None, relabel=False,
                 sampling=None, weights=None, num_samples=None):
        self._batcher = None
        self._output = None
        self._reader = None
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if sampling not in (None, "balanced") or (sampling and weights
                                                  is not None):
            raise ValueError("sampling is None or 'balanced'; weights "
                             "replace it, not join it")
        if num_samples is not None and sampling is None and weights is None:
            raise ValueError("num_samples needs sampling='balanced' or "
                             "weights")
        if indices is not None and (subset is not None or sampling
                                    or weights is not None):
            raise ValueError("indices= is the order itself: subset=, "
                             "sampling= and weights= choose one instead")
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in [0, world_size)")
        if not 0 <= prefetch <= _lib.MAX_PREFETCH:
            raise ValueError("prefetch must be in [0, %d]"
                             % _lib.MAX_PREFETCH)
        layouts = {"NCHW": _lib.LAYOUT_NCHW, "NHWC": _lib.LAYOUT_NHWC}
        modes = {"center": _lib.CROP_CENTER, "random": _lib.CROP_RANDOM,
                 "random_resized": _lib.CROP_RANDOM_RESIZED}
        dtype = _dtype_name(dtype)
        if layout not in layouts or crop_mode not in modes:
            raise ValueError("layout must be NCHW or NHWC, crop_mode "
                             "center, random or random_resized")
        if crop_mode == "random_resized" and crop is None:
            raise ValueError("crop_mode='random_resized' needs crop= (the "
                             "output size)")
        self.mean, self.std = _normalization(path, mean, std)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.layout = layout
        self.dtype = dtype
        self.prefetch = prefetch
        self.order_window = order_window
        self._ahead = None  # the thread reading the next batch ahead
        self._reader = Reader(path, verify=verify)
        self._external = self._external_order(indices)
        self._subset = Subset(self._reader, subset, relabel)
        self._weights = self._sampling_weights(sampling, weights)
        self.epoch_samples = len(self._subset) if num_samples is None \
            else int(num_samples)
        opts = _lib.c_opts_p()
        _lib.check(lib.imgpack_batch_options_create(ctypes.byref(opts)),
                   lambda: "out of memory")
        try:
            _configure(opts, layouts[layout], buffers.DTYPES[dtype][1],
                       self.mean, self.std, flip, crop, modes[crop_mode],
                       ranges(scale, ratio), threads, prefetch)
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
        self._output = buffers.Output(
            self.image_shape, dtype, output,
            buffers.pinned_available(pin_memory), batch_size, prefetch + 2)
        if self._output.image_bytes != lib.imgpack_batcher_image_bytes(b):
            raise AssertionError("buffers.DTYPES disagrees with the C "
                                 "library on the size of %s" % dtype)
        self._inflight = collections.deque()  # (images, labels), FIFO
        self._active = None  # the token of the iterator that may run
        self._start = 0      # where the next iter() begins (resume)
        self._position = 0   # samples of this epoch handed out
        _LOADERS.add(self)

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

    def _external_order(self, indices):
        if indices is None:
            return None
        if self.rank != 0 or self.world_size != 1:
            raise ValueError("indices= is already this rank's order: leave "
                             "rank and world_size at their defaults")
        if hasattr(indices, "set_epoch") and hasattr(indices, "__iter__"):
            return indices  # a sampler, asked again each epoch
        order = np.asarray(indices)
        if order.ndim != 1 or (order.size and not np.issubdtype(
                order.dtype, np.integer)):
            raise ValueError("indices must be a 1-D sequence of integers")
        if order.size and (order.min() < 0
                           or order.max() >= len(self._reader)):
            raise ValueError("indices must lie in [0, %d)"
                             % len(self._reader))
        return np.ascontiguousarray(order, np.uint64)

    def close(self):
        """Stops the prefetch and frees the batcher, buffers and store."""
        self._active = None
        self._join_read_ahead()
        if self._batcher:
            # Cancels batches in flight; their buffers are not touched
            # once it returns, so only then may they go.
            lib.imgpack_batcher_destroy(self._batcher)
            self._batcher = None
        getattr(self, "_inflight", collections.deque()).clear()
        if self._output is not None:
            self._output.close()
        if self._reader is not None:
            self._reader.close()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_epoch(self, epoch):
        """Selects the epoch the next iter() reads; a new epoch starts at
        its beginning, the current one where load_state_dict put it."""
        if epoch != self.epoch:
            self._start = self._position = 0
        self.epoch = epoch

    @property
    def num_samples(self):
        """Records this rank reads per epoch."""
        if self._external is not None:
            return len(self.indices())
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
            return self._subset.records(weighted_indices(
                self._weights, self.epoch_samples, self.epoch, self.seed,
                self.rank, self.world_size))
        if self._external is None:
            return self._subset.records(epoch_indices(
                len(self._subset), self.epoch, self.seed, self.shuffle,
                self.rank, self.world_size, self.drop_last,
                self.order_window))
        if isinstance(self._external, np.ndarray):
            return self._external
        self._external.set_epoch(self.epoch)
        return np.fromiter(iter(self._external), np.uint64)

    def state_dict(self):
        """Where this rank is: epoch, samples handed out in it, and a
        fingerprint of the order (to refuse a mismatched load)."""
        order = self.indices()
        return {"epoch": self.epoch, "position": self._position,
                "seed": self.seed, "num_samples": len(order),
                "order_crc32": zlib.crc32(order.tobytes())}

    def load_state_dict(self, state):
        """Makes the next iter() continue the saved epoch where it was
        left. The store, seed and order (shuffle, rank, world_size,
        drop_last, indices) must be those the state was saved with."""
        self._stop()
        epoch, position = int(state["epoch"]), int(state["position"])
        previous = self.epoch
        self.epoch = epoch
        order = self.indices()
        if (state["seed"] != self.seed or state["num_samples"] != len(order)
                or state["order_crc32"] != zlib.crc32(order.tobytes())
                or not 0 <= position <= len(order)):
            self.epoch = previous
            raise ValueError("the state was saved for another order: the "
                             "store, seed, shuffle, rank, world_size, "
                             "drop_last or indices differ")
        self._start = self._position = position

    def batch(self, indices):
        """Fills one batch of the given record indices, with the crops and
        flips of the current epoch: (images, labels). Stops an iteration
        in progress (its prefetched batches are waited out)."""
        self._stop()
        return self._run(np.ascontiguousarray(indices, np.uint64),
                         self.epoch)

    def __iter__(self):
        if not self._batcher:
            raise ValueError("the Loader is closed")
        self._stop()
        token = self._active = object()
        order = self.indices()
        start, self._start = self._start, 0
        self._position = start
        n = len(order)
        end = n - (n - start) % self.batch_size if self.drop_last else n
        bounds = [(lo, min(lo + self.batch_size, n))
                  for lo in range(start, end, self.batch_size)]
        return self._iterate(token, order, bounds, self.epoch)

    def _iterate(self, token, order, bounds, epoch):
        submitted = 0
        try:
            for number, (lo, hi) in enumerate(bounds):
                if self._active is not token:
                    raise RuntimeError("this iterator was stopped by a newer "
                                       "iter(), batch() or load_state_dict()")
                if not self.prefetch:
                    batch = self._run(order[lo:hi], epoch)
                    if number + 1 < len(bounds):
                        self._read_ahead(order[slice(*bounds[number + 1])])
                else:
                    if submitted > number and not self._inflight:
                        submitted = number  # a forked child starts afresh
                    submitted = self._top_up(order, bounds, submitted, epoch)
                    batch = self._wait()
                    submitted = self._top_up(order, bounds, submitted, epoch)
                self._position = hi
                yield batch
                # The caller's loop variable holds the batch; ours must
                # not, or its buffer never comes free.
                batch = None
        finally:
            if self._active is token:
                self._stop()

    def _read_ahead(self, indices):
        """Without prefetch, asks for the next batch's records on a thread
        of its own while the caller uses this batch (with prefetch, the
        batcher's driver thread reads each batch ahead as it starts it):
        under a memory limit the kernel frees page cache for them inside
        the call, which takes as long as converting the batch (ctypes lets
        the GIL go meanwhile)."""
        self._join_read_ahead()
        self._ahead = threading.Thread(
            target=self._reader.prefetch, args=(indices,),
            name="imgpack-readahead", daemon=True)
        self._ahead.start()

    def _join_read_ahead(self):
        if getattr(self, "_ahead", None) is not None:
            self._ahead.join()
            self._ahead = None

    def _stop(self):
        """Waits out the batches in flight and retires the iterator."""
        self._active = None
        while self._inflight:
            self._inflight.popleft()
            lib.imgpack_batcher_wait(self._batcher)

    def _fill_args(self, indices, epoch):
        indices = np.ascontiguousarray(indices, np.uint64)
        images, labels, images_at, labels_at = self._output.batch(
            indices.size)
        args = (self._batcher, indices.ctypes.data_as(_lib.u64_p),
                indices.size, self.seed & _MASK, epoch & _MASK, images_at,
                indices.size * self._output.image_bytes, labels_at)
        return (images, labels), args

    def _run(self, indices, epoch):
        batch, args = self._fill_args(indices, epoch)
        self._check(lib.imgpack_batcher_run(*args))
        return self._relabelled(batch)

    def _top_up(self, order, bounds, submitted, epoch):
        while submitted < len(bounds) and \
                len(self._inflight) < self.prefetch:
            lo, hi = bounds[submitted]
            batch, args = self._fill_args(order[lo:hi], epoch)
            self._check(lib.imgpack_batcher_submit(*args))
            self._inflight.append(batch)
            submitted += 1
        return submitted

    def _wait(self):
        batch = self._inflight.popleft()
        self._check(lib.imgpack_batcher_wait(self._batcher))
        return self._relabelled(batch)

    def _relabelled(self, batch):
        """The filled batch, its labels renumbered in place (relabel=);
        a torch tensor's through the numpy view of its memory."""
        if self._subset.relabel:
            labels = batch[1]
            view = labels if isinstance(labels, np.ndarray) \
                else labels.numpy()
            view[...] = self._subset.map_labels(view)
        return batch

    def _check(self, status):
        if status != _lib.OK:
            raise ImgpackError(status, lib.imgpack_batcher_errmsg(
                self._batcher).decode(errors="replace"))


def _dtype_name(dtype):
    """'uint8', 'float32', 'float16' or 'bfloat16' from a name, a numpy
    dtype or a torch dtype."""
    name = str(dtype).replace("torch.", "")
    if name not in buffers.DTYPES:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in buffers.DTYPES:
        raise ValueError("dtype must be uint8, float32, float16 or "
                         "bfloat16, not %r" % (dtype,))
    return name


def _normalization(path, mean, std):
    """The (mean, std) a Loader uses: ImageNet's unless given; "store"
    reads what ``imgpack stats`` stored."""
    if isinstance(mean, str) or isinstance(std, str):
        if mean != "store" or std not in (None, "store"):
            raise ValueError("mean='store' takes mean and std from the "
                             "store; give std no value of its own")
        stored = stored_stats(path)
        if stored is None:
            raise ValueError("%s has no stored mean/std: run `imgpack "
                             "stats` on it first" % path)
        return stored
    return (IMAGENET_MEAN if mean is None else mean,
            IMAGENET_STD if std is None else std)


def _configure(opts, layout, dtype, mean, std, flip, crop, mode, box_ranges,
               threads, prefetch):
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
    (scale_min, scale_max), (ratio_min, ratio_max) = box_ranges
    setting(lib.imgpack_batch_options_set_random_resized(
        opts, scale_min, scale_max, ratio_min, ratio_max), "scale/ratio")
    setting(lib.imgpack_batch_options_set_flip(opts, int(bool(flip))),
            "flip")
    setting(lib.imgpack_batch_options_set_threads(opts, threads), "threads")
    setting(lib.imgpack_batch_options_set_prefetch(opts, prefetch),
            "prefetch")


# Live Loaders, so that a forked child can forget their batches in flight:
# the child's copy of the C batcher has none (reader.h), and the parent's
# buffers must not be waited for there.
_LOADERS = weakref.WeakSet()


def _forget_in_flight():
    for loader in list(_LOADERS):
        loader._inflight.clear()


os.register_at_fork(after_in_child=_forget_in_flight)
