"""Subsets without repacking: the record indices a SQL WHERE clause on the
catalog selects (imgpack_reader_select), and the index-list files
``imgpack select -o`` writes (docs/FORMAT.md, "Index lists"). Dataset
takes such indices as ``indices=``, Loader as ``subset=`` (subset.py)."""

import collections.abc
import ctypes
import numbers

import numpy as np

from . import _lib
from ._lib import ImgpackError, lib
from .reader import Reader


def _text(value):
    """A parameter as text the C side binds back as the same value: ints
    and floats as printf writes them (so they bind as numbers), str and
    bytes as they are."""
    if isinstance(value, bool) or not isinstance(
            value, (str, bytes, numbers.Integral, numbers.Real)):
        raise TypeError("select parameters are str, bytes, int or float, "
                        "not %s" % type(value).__name__)
    if isinstance(value, numbers.Integral):
        return str(int(value)).encode()
    if isinstance(value, numbers.Real):
        return ("%.17g" % float(value)).encode()
    return value if isinstance(value, bytes) else value.encode()


def select(store, where, params=()):
    """The indices (ascending uint64 array) of the records of ``store`` (a
    path, or an open Reader) that the SQL expression ``where`` selects: a
    WHERE clause over the catalog's ``images`` and ``classes`` tables, run
    read-only as ``SELECT images.idx FROM images JOIN classes USING
    (class_id) WHERE (<where>) ORDER BY images.idx``; one expression, no
    writes, ATTACH, PRAGMA or load_extension (ImgpackError says what was
    refused). ``params`` fill its ``?`` (or ``:name``) placeholders in
    order of appearance."""
    if isinstance(params, (str, bytes, collections.abc.Mapping)):
        raise TypeError("params is a sequence of values, in the order of "
                        "the clause's placeholders (:name ones too)")
    reader = store if isinstance(store, Reader) else Reader(store)
    try:
        values = [_text(v) for v in params]
        array = (ctypes.c_char_p * max(len(values), 1))(*values)
        capacity = len(reader)
        out = np.empty(capacity, np.uint64)
        count = ctypes.c_uint64(0)
        _lib.check(lib.imgpack_reader_select(
            reader._handle, where.encode(), array, len(values),
            out.ctypes.data_as(_lib.u64_p), capacity, ctypes.byref(count)),
            reader._errmsg)
        return out[:count.value].copy()
    finally:
        if reader is not store:
            reader.close()


def load_indices(path):
    """An index list written by ``imgpack select -o FILE`` (or by hand):
    one decimal index a line, as a uint64 array."""
    with open(path, "rb") as f:
        lines = f.read().split()
    try:
        return np.array([int(line) for line in lines], np.uint64)
    except (ValueError, OverflowError):
        raise ValueError("%s: not an index list (one decimal index a line)"
                         % path) from None
