"""What weighted sampling costs per epoch beside the shuffle
(docs/BENCHMARKS.md, "Sampling"): for an ImageNet-sized epoch (1,281,167
records, 1,000 classes of 732 to 1,300 records), the median seconds of
epoch_indices (Fisher-Yates shuffle), balanced_weights and
weighted_indices (one rank, and rank 0 of 8), over ROUNDS interleaved
rounds.

    PYTHONPATH=python /usr/bin/python3 bench/sampling_bench.py [ROUNDS]
"""
import statistics
import sys
import time

import numpy as np

import imgpack

N = 1_281_167


def main(rounds=7):
    rng = np.random.default_rng(0)
    sizes = rng.integers(732, 1301, 1000)
    sizes[-1] += N - sizes.sum()
    labels = np.repeat(np.arange(1000), sizes)
    weights = imgpack.balanced_weights(labels)
    cases = {
        "epoch_indices (shuffle)": lambda e: imgpack.epoch_indices(N, e),
        "balanced_weights": lambda e: imgpack.balanced_weights(labels),
        "weighted_indices": lambda e: imgpack.weighted_indices(weights,
                                                               epoch=e),
        "weighted_indices rank 0/8": lambda e: imgpack.weighted_indices(
            weights, epoch=e, rank=0, world_size=8),
    }
    times = {name: [] for name in cases}
    for epoch in range(int(rounds)):
        for name, run in cases.items():
            start = time.perf_counter()
            run(epoch)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["epoch_indices (shuffle)"])
    for name, values in times.items():
        median = statistics.median(values)
        print("%-28s %7.3f s  %5.2f x shuffle" % (name, median, median / base))


if __name__ == "__main__":
    main(*sys.argv[1:])
