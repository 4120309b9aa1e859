"""A store's catalog and its end-to-end check, through the C library:
``stored_stats`` (the mean/std ``imgpack stats`` keeps in the catalog,
imgpack_catalog_stats) and ``verify`` (what ``imgpack verify`` finds,
imgpack_verify)."""

import collections
import ctypes
import os

from . import _lib
from ._lib import ImgpackError, lib

# The most channels a record has (RGBA).
_MAX_CHANNELS = 4

_KINDS = {1: "store", 2: "record", 3: "catalog", 4: "source", 5: "note"}

Problem = collections.namedtuple("Problem", "kind record message")
Problem.__doc__ = """One finding of ``verify``: ``kind`` is "store",
"record", "catalog", "source" or "note" (not a problem: an incomplete
store's rows past its count), ``record`` the record index or None,
``message`` the line ``imgpack verify`` prints."""


def stored_stats(path):
    """The (mean, std) that ``imgpack stats`` stored in the catalog of the
    store at ``path`` (dataset keys ``mean`` and ``std``), as tuples of
    floats, or None when there are none or no readable catalog."""
    catalog = _lib.c_catalog_p()
    try:
        if lib.imgpack_catalog_open(ctypes.byref(catalog),
                                    os.fsencode(path), 0) != _lib.OK:
            return None
        mean = (ctypes.c_double * _MAX_CHANNELS)()
        std = (ctypes.c_double * _MAX_CHANNELS)()
        channels = ctypes.c_uint32(0)
        if lib.imgpack_catalog_stats(catalog, mean, std, _MAX_CHANNELS,
                                     ctypes.byref(channels)) != _lib.OK:
            return None
        n = channels.value
        return tuple(mean[:n]), tuple(std[:n])
    finally:
        lib.imgpack_catalog_close(catalog)


def verify(path, sources=None):
    """Checks the store at ``path`` from end to end, as ``imgpack verify``
    does (imgpack_verify in imgpack/verify.h), in a child process that a
    damaged store may crash without harm; with ``sources``, the directory
    it was packed from, also re-hashes each source file. Returns the list
    of Problems in the order found: empty for a sound, complete store.
    Raises ImgpackError when the store cannot be checked at all (no
    store there)."""
    found = []

    def on_problem(ctx, problem):
        p = problem.contents
        found.append(Problem(
            _KINDS.get(p.kind, str(p.kind)),
            None if p.record == _lib.PROBLEM_NO_RECORD else p.record,
            p.message.decode(errors="replace")))

    opts = _lib.VerifyOptions(
        None if sources is None else os.fsencode(sources))
    summary = _lib.VerifySummary()
    status = lib.imgpack_verify(os.fsencode(path), ctypes.byref(opts),
                                _lib.ON_PROBLEM(on_problem), None,
                                ctypes.byref(summary))
    if status != _lib.OK:
        raise ImgpackError(status, summary.error.decode(errors="replace"))
    return found
