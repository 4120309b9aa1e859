"""The records a Dataset or Loader reads: the whole store or a subset of
it by index (Dataset ``indices=``, Loader ``subset=``, e.g. from
select()), and the labels it gives: the store's class ids, or with
``relabel`` the subset's classes renumbered 0..k-1."""

import numpy as np

from . import _lib
from ._lib import ImgpackError


class Subset:
    """Which records a Dataset or Loader reads, and the labels it gives.

    ``indices``: None (every record) or record indices (any order, repeats
    allowed), each below the store's count. Labels are the store's class
    ids; with ``relabel`` the classes present in the subset are renumbered
    0..k-1 in the order of their store ids, and ``classes`` lists the kept
    names in that order."""

    def __init__(self, reader, indices=None, relabel=False):
        self._reader = reader
        self.relabel = bool(relabel)
        if indices is None:
            self.indices = None
        else:
            self.indices = np.ascontiguousarray(indices, np.uint64).ravel()
            if self.indices.size and int(self.indices.max()) >= len(reader):
                raise ImgpackError(_lib.ERR_RANGE, "%s: index %d of the "
                                   "subset is past the store's %d records"
                                   % (reader.path, int(self.indices.max()),
                                      len(reader)))
        self._store_labels = None
        self._remap = None
        self._classes = reader.classes
        if self.relabel:
            kept = np.unique(self.store_labels())
            self._remap = np.full(len(self._classes), -1, np.int64)
            self._remap[kept] = np.arange(kept.size)
            self._classes = [self._classes[k] for k in kept]

    def __len__(self):
        return len(self._reader) if self.indices is None else self.indices.size

    def record(self, position):
        """The store index of position ``position`` of the subset."""
        return position if self.indices is None else int(
            self.indices[position])

    def records(self, positions):
        """The store indices of an array of positions, as uint64."""
        positions = np.asarray(positions, np.uint64)
        return positions if self.indices is None else self.indices[positions]

    @property
    def classes(self):
        return self._classes

    def store_labels(self):
        """The store's label of every position, int64."""
        if self._store_labels is None:
            every = self._reader.labels()
            self._store_labels = every if self.indices is None \
                else every[self.indices]
        return self._store_labels

    def labels(self):
        """The label of every position, relabelled if asked, int64."""
        return self.map_labels(self.store_labels())

    def map_labels(self, labels):
        """Store class ids to the labels this subset gives."""
        return labels if self._remap is None else self._remap[labels]
