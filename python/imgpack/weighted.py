"""Weighted epoch order: indices drawn with replacement in proportion to
per-record weights (torch's WeightedRandomSampler, with imgpack's own
generator), and the class-balanced weights that make every class equally
likely per draw. Both are the C functions imgpack_sampler_weighted and
imgpack_sampler_balanced_weights (include/imgpack/reader.h)."""

import numpy as np

from . import _lib
from ._lib import ImgpackError, lib

_MASK = (1 << 64) - 1


def balanced_weights(labels):
    """float64 weights, 1 / (number of records with that label) each, so a
    weighted draw picks each class present equally often."""
    labels = np.ascontiguousarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= 1 << 32):
        raise ValueError("labels must be in [0, 2**32)")
    labels = np.ascontiguousarray(labels, np.uint32).ravel()
    weights = np.empty(labels.size, np.float64)
    status = lib.imgpack_sampler_balanced_weights(
        labels.ctypes.data_as(_lib.u32_p), labels.size,
        weights.ctypes.data_as(_lib.f64_p))
    if status != _lib.OK:
        raise ImgpackError(status, "%d labels" % labels.size)
    return weights


def weighted_indices(weights, num_samples=None, epoch=0, seed=0, rank=0,
                     world_size=1):
    """The positions (into ``weights``) rank ``rank`` draws in epoch
    ``epoch``, as a uint64 array: ``num_samples`` draws per epoch (default
    ``len(weights)``) rounded up to a multiple of ``world_size``, each
    with probability weights[i] / sum(weights), with replacement; rank r
    takes draws r, r+world_size, ... of the epoch's one stream, seeded by
    (seed, epoch)."""
    weights = np.ascontiguousarray(weights, np.float64).ravel()
    if num_samples is None:
        num_samples = weights.size
    if num_samples < 0:
        raise ValueError("num_samples must not be negative")
    if not 0 <= rank < world_size:
        raise ValueError("rank must be in [0, world_size)")
    count = lib.imgpack_sampler_count(num_samples, world_size, 0)
    out = np.empty(count, np.uint64)
    status = lib.imgpack_sampler_weighted(
        weights.ctypes.data_as(_lib.f64_p), weights.size, num_samples,
        seed & _MASK, epoch & _MASK, rank, world_size,
        out.ctypes.data_as(_lib.u64_p), count)
    if status != _lib.OK:
        raise ImgpackError(status, "weights must be finite and >= 0 with a "
                           "positive sum (%d weights, %d samples)"
                           % (weights.size, num_samples))
    return out
