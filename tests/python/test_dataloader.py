"""imgpack.Dataset in torch's DataLoader with forked workers: each worker
inherits a reader opened in the parent, which must reopen the store in
the child, and every index comes back exactly once per epoch."""
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

import imgpack
import synthetic_store


def ids_of(batch):
    images, labels = batch
    ids = [synthetic_store.index_of(im) for im in images.numpy()]
    assert labels.tolist() == [i % 3 for i in ids]
    return ids


def test_forked_workers_return_every_index_once(tmp_path):
    store = synthetic_store.write(tmp_path / "s", 101)
    ds = imgpack.Dataset(store)
    assert synthetic_store.index_of(ds[100][0]) == 100  # used before fork
    loader = DataLoader(ds, batch_size=7, shuffle=True, num_workers=2,
                        multiprocessing_context="fork",
                        persistent_workers=True)
    for epoch in range(2):
        seen = [i for batch in loader for i in ids_of(batch)]
        assert sorted(seen) == list(range(101)), epoch
    # The parent's reader still works after its workers came and went.
    assert np.array_equal(ds[7][0], synthetic_store.pixels(7, 12, 10))


def test_distributed_ranks_with_workers(tmp_path):
    store = synthetic_store.write(tmp_path / "s", 50)
    ds = imgpack.Dataset(store, copy=True)
    union = []
    for rank in range(3):
        sampler = DistributedSampler(ds, num_replicas=3, rank=rank,
                                     shuffle=True, seed=4)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=5, sampler=sampler,
                            num_workers=2, multiprocessing_context="fork")
        got = [i for batch in loader for i in ids_of(batch)]
        assert got == list(sampler)
        union += got
    assert set(union) == set(range(50))
    assert isinstance(torch.utils.data.get_worker_info(), type(None))
