"""Random access to a store: the Reader handle and the map-style Dataset.

A Reader owns one C imgpack_reader. It may be shared by threads, and it
survives fork(): the C library notices the new process and reopens the
store, which is what PyTorch DataLoader workers need.
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import ImgpackError, lib
from .subset import Subset

# include/imgpack/reader.h: IMGPACK_PREFETCH_{DEFAULT,MAX}_LIMIT.
PREFETCH_DEFAULT_LIMIT = 64 << 20
PREFETCH_MAX_LIMIT = 1 << 30


class _View:
    """Exposes read-only memory of the store's map to numpy while keeping
    its Reader, and so the map, alive."""

    __slots__ = ("__array_interface__", "_owner")

    def __init__(self, address, shape, owner):
        self.__array_interface__ = {
            "data": (address, True),  # True: read-only
            "shape": shape,
            "typestr": "|u1",
            "version": 3,
        }
        self._owner = owner


def open_flags(incomplete=False, verify=True):
    """imgpack_reader_open's flags for the ``incomplete`` and ``verify``
    arguments of Reader, Dataset and Loader. ``verify``: True (the
    default) checks each record in full, payload CRC included, the first
    time this process (or one forked from it) reads it; False skips the
    payload CRC (IMGPACK_OPEN_NO_VERIFY: headers, labels and metadata are
    still checked); "always" checks the payload on every read."""
    if verify not in (True, False, "always"):
        raise ValueError('verify must be True, False or "always"')
    return ((_lib.OPEN_INCOMPLETE if incomplete else 0)
            | (_lib.OPEN_VERIFY if verify == "always" else 0)
            | (_lib.OPEN_NO_VERIFY if verify is False else 0))


class Reader:
    """An open store (imgpack_reader). ``incomplete=True`` opens a store
    that is still being packed; ``verify`` says how records are checked
    (see open_flags: by default each in full on its first read, so damage
    raises ImgpackError instead of coming back as pixels). Close it, or
    use it as a context manager.

    ``path`` may also be the output directory of a sharded pack (its
    shard-K-of-N subdirectories): the shards read as one dataset, indexed
    as a single pack of the same source would be (``info["shards"]`` says
    how many)."""

    def __init__(self, path, incomplete=False, verify=True):
        self._handle = None
        self.path = str(path)
        flags = open_flags(incomplete, verify)
        handle = _lib.c_reader_p()
        status = lib.imgpack_reader_open(ctypes.byref(handle),
                                         self.path.encode(), flags)
        if status != _lib.OK:
            message = lib.imgpack_reader_errmsg(handle).decode(
                errors="replace")
            lib.imgpack_reader_close(handle)
            raise ImgpackError(status, message)
        self._handle = handle

    def close(self):
        if self._handle:
            lib.imgpack_reader_close(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _errmsg(self):
        return lib.imgpack_reader_errmsg(self._handle).decode(
            errors="replace")

    def __len__(self):
        return lib.imgpack_reader_count(self._handle)

    @property
    def classes(self):
        n = lib.imgpack_reader_num_classes(self._handle)
        return [lib.imgpack_reader_class_name(self._handle, c).decode(
            errors="surrogateescape") for c in range(n)]

    @property
    def info(self):
        h = self._handle
        return {
            "path": self.path,
            "count": lib.imgpack_reader_count(h),
            "shards": lib.imgpack_reader_num_shards(h),
            "num_classes": lib.imgpack_reader_num_classes(h),
            "format": lib.imgpack_format_name(
                lib.imgpack_reader_format(h)).decode(),
            "width": lib.imgpack_reader_width(h),
            "height": lib.imgpack_reader_height(h),
            "channels": lib.imgpack_reader_channels(h),
            "resize": lib.imgpack_reader_resize(h),
            "crop": lib.imgpack_reader_crop(h),
            "complete": bool(lib.imgpack_reader_is_complete(h)),
            "nolock": bool(lib.imgpack_reader_is_nolock(h)),
        }

    def labels(self):
        """All labels, as int64."""
        n = len(self)
        out = np.empty(n, np.uint32)
        _lib.check(lib.imgpack_reader_labels(
            self._handle, out.ctypes.data_as(_lib.u32_p), n), self._errmsg)
        return out.astype(np.int64)

    def refresh(self):
        """Sees records committed since open (not concurrently with other
        calls on this reader)."""
        _lib.check(lib.imgpack_reader_refresh(self._handle), self._errmsg)

    def channel_stats(self, indices=None, threads=0):
        """Per-channel (mean, std) of the pixels of records ``indices``
        (default: all), in 0..1 units, as two tuples: the arguments of
        Normalize(mean, std) for this data (imgpack_reader_channel_stats;
        ``imgpack stats`` computes the same and stores it)."""
        channels = lib.imgpack_reader_channels(self._handle)
        mean = np.empty(channels, np.float64)
        std = np.empty(channels, np.float64)
        if indices is None:
            pointer, n = None, len(self)
        else:
            indices = np.ascontiguousarray(indices, np.uint64)
            pointer, n = indices.ctypes.data_as(_lib.u64_p), indices.size
        _lib.check(lib.imgpack_reader_channel_stats(
            self._handle, pointer, n, threads,
            mean.ctypes.data_as(_lib.f64_p), std.ctypes.data_as(_lib.f64_p),
            channels), self._errmsg)
        return tuple(mean.tolist()), tuple(std.tolist())

    def prefetch(self, indices):
        """Starts reading records ``indices`` from the disk into the page
        cache, all at once and without waiting (imgpack_reader_prefetch):
        reads of them soon after find them in memory. At most
        ``prefetch_limit`` bytes per call; a hint that costs about a
        microsecond per record when they are cached already."""
        indices = np.ascontiguousarray(indices, np.uint64)
        _lib.check(lib.imgpack_reader_prefetch(
            self._handle, indices.ctypes.data_as(_lib.u64_p), indices.size),
            self._errmsg)

    def set_prefetch_limit(self, nbytes):
        """Bytes one prefetch (or one Loader batch) may read ahead: default
        64 MiB, at most 1 GiB; 0 turns read-ahead off."""
        if not 0 <= nbytes <= PREFETCH_MAX_LIMIT:
            raise ValueError("prefetch limit must be in [0, %d]"
                             % PREFETCH_MAX_LIMIT)
        _lib.check(lib.imgpack_reader_set_prefetch_limit(self._handle, nbytes),
                   self._errmsg)

    def get(self, index):
        """The record's payload bytes (a copy) and its imgpack_record."""
        rec = _lib.Record()
        _lib.check(lib.imgpack_reader_get(self._handle, index,
                                          ctypes.byref(rec)), self._errmsg)
        return ctypes.string_at(rec.data, rec.size), rec

    def image(self, index, copy=False):
        """(HWC uint8 array, label) of record ``index``.

        Without ``copy``, a raw record of a complete store comes back as a
        read-only view of the memory map: nothing rewrites such a record,
        and the view keeps this Reader (so the map) alive. Everything else
        -- jpeg/webp records, stores still being packed, ``copy=True`` --
        is decoded or copied into a new writable array."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("record %d out of range (%d records)"
                             % (index, len(self)))
        rec = _lib.Record()
        h = self._handle
        _lib.check(lib.imgpack_reader_get(h, index, ctypes.byref(rec)),
                   self._errmsg)
        shape = (rec.height, rec.width, rec.channels)
        if (rec.format == _lib.FORMAT_RAW and not copy
                and lib.imgpack_reader_is_complete(h)):
            return np.asarray(_View(rec.data, shape, self)), rec.label
        out = np.empty(shape, np.uint8)
        _lib.check(lib.imgpack_reader_decode(
            h, index, out.ctypes.data_as(_lib.u8_p), out.nbytes,
            ctypes.byref(rec)), self._errmsg)
        return out, rec.label


class Dataset:
    """A map-style dataset over a store, usable as a
    ``torch.utils.data.Dataset`` (also with ``DataLoader(num_workers>0)``).

    ``ds[i]`` is ``(image, label)``: an HWC uint8 numpy array and an int,
    with ``transform`` (if given) applied to the image. Raw records of a
    complete store are read-only zero-copy views of the memory map unless
    ``copy=True``; other records are decoded into new arrays (see
    Reader.image). torch warns once when it wraps a read-only array
    (torch.from_numpy / ToTensor); pass ``copy=True`` to avoid that.

    ``verify`` as for Reader: by default each record is checked in full
    the first time any worker reads it (workers forked after the Dataset
    was made share what was checked).

    ``indices``: read only these records (e.g. ``imgpack.select(...)``):
    ``ds[i]`` is record ``indices[i]``. Labels stay the store's class ids
    unless ``relabel``: then the subset's classes are renumbered 0..k-1 in
    store order and ``classes`` lists the kept ones.

    Properties: ``classes`` (names, by label), ``labels`` (int64 array of
    every item's label, without reading records in a complete store),
    ``info`` (dict: count, format, geometry, ...).
    """

    def __init__(self, path, transform=None, copy=False, verify=True,
                 incomplete=False, indices=None, relabel=False):
        self.path = str(path)
        self.transform = transform
        self.copy = copy
        self._options = {"verify": verify, "incomplete": incomplete}
        self._reader = Reader(self.path, **self._options)
        self._subset = Subset(self._reader, indices, relabel)
        self._labels = None

    def __len__(self):
        return len(self._subset)

    def __getitem__(self, index):
        image, label = self._reader.image(self._subset.record(int(index)),
                                          copy=self.copy)
        label = int(self._subset.map_labels(label))
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def prefetch(self, indices):
        """Reads items ``indices`` (of this Dataset: positions in its
        subset, if any) ahead into the page cache (Reader.prefetch), for
        this process and any forked from it; see
        imgpack.PrefetchBatchSampler for DataLoader workers."""
        self._reader.prefetch(self._subset.records(indices))

    @property
    def classes(self):
        return self._subset.classes

    @property
    def labels(self):
        if self._labels is None:
            self._labels = self._subset.labels()
        return self._labels

    @property
    def info(self):
        return self._reader.info

    @property
    def reader(self):
        return self._reader

    # Pickled for DataLoader's spawn/forkserver start methods: reopen by
    # path. (With fork the object is inherited and the C side reopens.)
    def __getstate__(self):
        return {"path": self.path, "transform": self.transform,
                "copy": self.copy, "options": self._options,
                "indices": self._subset.indices,
                "relabel": self._subset.relabel}

    def __setstate__(self, state):
        self.__init__(state["path"], state["transform"], state["copy"],
                      indices=state["indices"], relabel=state["relabel"],
                      **state["options"])
