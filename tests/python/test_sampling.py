"""Weighted and class-balanced sampling (imgpack_sampler_weighted,
imgpack_sampler_balanced_weights, the Loader's sampling= / weights=):
frequencies follow the weights (chi-square at a fixed seed), ranks
interleave into one stream, (seed, epoch) decide the draws, bad weights
are refused."""
import numpy as np
import pytest

import imgpack
from conftest import REPO_SAMPLE, pack

# Chi-square critical values at p = 0.001 by degrees of freedom (tables;
# the statistic of a correct sampler exceeds them one time in 1000, and
# the seeds are fixed, so a pass is reproducible).
CRITICAL = {3: 16.266, 9: 27.877, 19: 43.820}


def chi_square(counts, probabilities):
    expected = np.asarray(probabilities) * np.sum(counts)
    return float(np.sum((np.asarray(counts) - expected) ** 2 / expected))


def test_frequencies_follow_the_weights():
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.1, 5.0, 22)
    weights[[3, 11]] = 0.0
    draws = imgpack.weighted_indices(weights, 200_000, epoch=2, seed=11)
    assert draws.dtype == np.uint64 and draws.size == 200_000
    counts = np.bincount(draws.astype(np.int64), minlength=22)
    assert counts[3] == counts[11] == 0  # zero weight: never drawn
    live = weights > 0
    p = weights[live] / weights[live].sum()
    assert chi_square(counts[live], p) < CRITICAL[live.sum() - 1]
    # ... and a wrong hypothesis is rejected: the test has power.
    assert chi_square(counts[live], np.full(live.sum(), 1 / live.sum())) > \
        10 * CRITICAL[live.sum() - 1]


def test_balanced_weights_make_classes_equally_likely():
    labels = np.repeat([0, 1, 2, 5], [1, 9, 90, 400])  # 3 and 4 are absent
    weights = imgpack.balanced_weights(labels)
    assert np.allclose(weights, 1.0 / np.bincount(labels)[labels])
    draws = imgpack.weighted_indices(weights, 40_000, seed=5)
    drawn = np.bincount(labels[draws.astype(np.int64)], minlength=6)
    assert drawn[3] == drawn[4] == 0
    assert chi_square(drawn[[0, 1, 2, 5]], [0.25] * 4) < CRITICAL[3]
    # Within the largest class every record is equally likely.
    inside = draws[labels[draws.astype(np.int64)] == 5].astype(np.int64)
    per_record = np.bincount(inside - 100, minlength=400)
    groups = per_record.reshape(10, 40).sum(axis=1)  # 10 bins of 40 records
    assert chi_square(groups, [0.1] * 10) < CRITICAL[9]


def test_ranks_interleave_into_one_stream():
    weights = np.arange(1.0, 31.0)
    for world, samples in ((3, 1000), (4, 10), (1, 7), (5, 3)):
        per_rank = -(-samples // world)
        ranks = [imgpack.weighted_indices(weights, samples, epoch=4, seed=9,
                                          rank=r, world_size=world)
                 for r in range(world)]
        assert [r.size for r in ranks] == [per_rank] * world
        whole = imgpack.weighted_indices(weights, per_rank * world, epoch=4,
                                         seed=9)
        # Rank r's i-th draw is draw r + i*world of the epoch's stream.
        assert np.array_equal(np.stack(ranks, axis=1).ravel(), whole)


def test_seed_and_epoch_decide_the_draws():
    weights = np.ones(1000)
    a = imgpack.weighted_indices(weights, 500, epoch=3, seed=1)
    assert np.array_equal(a, imgpack.weighted_indices(weights, 500, epoch=3,
                                                      seed=1))
    assert not np.array_equal(a, imgpack.weighted_indices(weights, 500,
                                                          epoch=4, seed=1))
    assert not np.array_equal(a, imgpack.weighted_indices(weights, 500,
                                                          epoch=3, seed=2))
    # Not the shuffle's stream: with replacement, repeats occur.
    assert len(set(a.tolist())) < 500


@pytest.mark.parametrize("weights", [[1.0, -1.0], [1.0, np.nan],
                                     [1.0, np.inf], [0.0, 0.0], []])
def test_bad_weights_are_refused(weights):
    with pytest.raises(imgpack.ImgpackError, match="ERR_INVALID_ARG"):
        imgpack.weighted_indices(weights, 4)
    with pytest.raises(ValueError):
        imgpack.weighted_indices([1.0], 4, rank=2, world_size=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("sampling") / "store"
    pack(REPO_SAMPLE, out, "--resize", "40", "--crop", "32", "--jobs", "2")
    return out


def test_loader_balanced_over_an_imbalanced_subset(store):
    # Records 0, 1, 2 (three classes) held 1, 4 and 16 times.
    subset = np.repeat([0, 1, 2], [1, 4, 16])
    reader = imgpack.Reader(store)
    labels = reader.labels()
    loader = imgpack.Loader(store, 64, subset=subset, sampling="balanced",
                            num_samples=6000, seed=2, epoch=1, dtype="uint8")
    assert loader.num_samples == 6000 and len(loader) == 94
    drawn = np.bincount(loader.indices().astype(np.int64), minlength=3)
    assert chi_square(drawn, [1 / 3] * 3) < 13.816  # df 2, p 0.001
    small = imgpack.Loader(store, 5, subset=subset, sampling="balanced",
                           num_samples=12, seed=2, dtype="uint8", world_size=2,
                           rank=1)
    order = small.indices()
    got = np.concatenate([y for _, y in small])
    assert got.tolist() == labels[order.astype(np.int64)].tolist()
    assert small.num_samples == 6 and len(small) == 2
    reader.close()


def test_loader_weights_and_ranks(store):
    weights = np.zeros(24)
    weights[[4, 9]] = [1.0, 3.0]
    loaders = [imgpack.Loader(store, 8, weights=weights, num_samples=401,
                              seed=4, rank=r, world_size=2) for r in (0, 1)]
    orders = [loader.indices() for loader in loaders]
    assert [o.size for o in orders] == [201, 201]
    assert set(np.concatenate(orders).tolist()) == {4, 9}
    whole = imgpack.weighted_indices(weights, 402, seed=4)
    assert np.array_equal(np.stack(orders, axis=1).ravel(), whole)
    loaders[0].set_epoch(1)
    assert not np.array_equal(loaders[0].indices(), orders[0])
    with pytest.raises(ValueError, match="weights has 3 values"):
        imgpack.Loader(store, 8, weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="num_samples needs"):
        imgpack.Loader(store, 8, num_samples=10)
    with pytest.raises(ValueError):
        imgpack.Loader(store, 8, sampling="uniform")
