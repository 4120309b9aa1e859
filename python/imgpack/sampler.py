"""Samplers for torch.utils.data.DataLoader over a Dataset: the epoch
order of ``epoch_indices`` (windowed if asked), and batches whose records
are read ahead before the workers ask for them.

torch 1.13's DataLoader hands each worker one batch of indices and calls
``dataset[i]`` once per index, so a Dataset never sees a batch (there is no
``__getitems__`` yet). The batch sampler does: it runs in the main process
and yields each batch ``prefetch_factor * num_workers`` batches before a
worker reads it. PrefetchBatchSampler asks for each batch's records when
it yields them (``Dataset.prefetch``), and since the page cache belongs to
the machine, not the process, the forked workers find the records in
memory::

    ds = imgpack.Dataset(path, transform=...)
    sampler = imgpack.EpochSampler(len(ds), seed=0, rank=r, world_size=w)
    batches = imgpack.PrefetchBatchSampler(
        torch.utils.data.BatchSampler(sampler, 256, drop_last=False), ds)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batches,
                                         num_workers=4)
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for images, labels in loader: ...

What is read ahead is bounded by the batches the DataLoader has asked for
and not yet consumed (``prefetch_factor * num_workers``, 2 * workers by
default), each at most the reader's prefetch limit (64 MiB).
"""

from ._lib import lib
from .loader import epoch_indices


class EpochSampler:
    """The indices of ``epoch_indices(n, epoch, seed, shuffle, rank,
    world_size, drop_last, window)``, one epoch per iteration: a
    DistributedSampler with imgpack's permutation, and the windowed order
    when ``window`` > 1. Call ``set_epoch(e)`` before each epoch."""

    def __init__(self, n, shuffle=True, seed=0, rank=0, world_size=1,
                 drop_last=False, window=0):
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in [0, world_size)")
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.window = window
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        return iter(epoch_indices(
            self.n, self.epoch, self.seed, self.shuffle, self.rank,
            self.world_size, self.drop_last, self.window).tolist())

    def __len__(self):
        return lib.imgpack_sampler_count(self.n, self.world_size,
                                         int(self.drop_last))


class PrefetchBatchSampler:
    """Yields the batches of ``batch_sampler`` (any iterable of index
    lists, e.g. torch's BatchSampler), calling ``dataset.prefetch(batch)``
    on each as it is yielded. ``set_epoch`` is passed on to the batch
    sampler's ``sampler`` when it has one."""

    def __init__(self, batch_sampler, dataset):
        self.batch_sampler = batch_sampler
        self.dataset = dataset

    def set_epoch(self, epoch):
        inner = getattr(self.batch_sampler, "sampler", None)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)

    def __iter__(self):
        for batch in self.batch_sampler:
            self.dataset.prefetch(batch)
            yield batch

    def __len__(self):
        return len(self.batch_sampler)
