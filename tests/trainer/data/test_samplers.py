"""Resumable sampling: every kind of sampler continues its epoch exactly from a small position."""

from __future__ import annotations

import io

import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    RandomSampler,
    Sampler,
    TensorDataset,
)

from tests.conftest import ToyNet
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint
from trainer.data.samplers import ResumableSampler, make_resumable

DATA = TensorDataset(torch.arange(40.0).unsqueeze(1), torch.arange(40))


class SeededEpochSampler(Sampler):
    """A user's sampler with its own state: a seed and an epoch counter that advances."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def __iter__(self):
        self.epoch += 1
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch))
                    .tolist())

    def __len__(self) -> int:
        return self.n

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]


class OddBatches(Sampler):
    """A user's batch sampler with no state: batches of varying size, drawn from the global RNG."""

    def __iter__(self):
        order = torch.randperm(40).tolist()
        return iter([order[:3], order[3:10], order[10:24], order[24:]])

    def __len__(self) -> int:
        return 4


LOADERS = {
    "sequential": lambda: DataLoader(DATA, batch_size=6),
    "shuffled": lambda: DataLoader(DATA, batch_size=6, shuffle=True),
    "shuffled, drop_last": lambda: DataLoader(DATA, batch_size=6, shuffle=True, drop_last=True),
    "own generator": lambda: DataLoader(DATA, batch_size=6, shuffle=True,
                                        generator=torch.Generator().manual_seed(5)),
    "with replacement": lambda: DataLoader(
        DATA, batch_size=6, sampler=RandomSampler(DATA, replacement=True, num_samples=30)),
    "distributed": lambda: DataLoader(
        DATA, batch_size=4, sampler=DistributedSampler(DATA, num_replicas=2, rank=1, seed=3)),
    "stateful sampler": lambda: DataLoader(DATA, batch_size=6, sampler=SeededEpochSampler(40)),
    "BatchSampler": lambda: DataLoader(
        DATA, batch_sampler=BatchSampler(RandomSampler(DATA), 7, drop_last=False)),
    "own batch sampler": lambda: DataLoader(DATA, batch_sampler=OddBatches()),
    "batch_size=None": lambda: DataLoader(DATA, batch_size=None, shuffle=True),
}
RECORDED = {"own batch sampler"}  # the one kind whose order cannot be drawn again


def first_index(batch):
    indices = batch[1]
    return indices.tolist() if indices.ndim else [int(indices)]


def epoch_batches(loader):
    return [first_index(b) for b in loader]


@pytest.mark.parametrize("kind", list(LOADERS))
@pytest.mark.parametrize("done", [0, 1, 3])
def test_a_resumed_epoch_continues_the_same_order_from_its_position(kind, done):
    torch.manual_seed(0)
    loader, sampler = make_resumable(LOADERS[kind]())
    sampler.set_epoch(2)
    epoch_batches(loader)  # an earlier epoch, so that stateful samplers have moved on
    expected = epoch_batches(loader)
    position = sampler.position(done)
    assert position["batches"] == done
    assert ("order" in position) == (kind in RECORDED)

    torch.manual_seed(99)  # a new process: other RNG state, a fresh sampler
    resumed, fresh = make_resumable(LOADERS[kind]())
    fresh.resume(position, done)
    assert epoch_batches(resumed) == expected[done:]


def test_batches_are_those_of_the_plain_loader():
    """One draw from the same RNG and the sampler's own order: the batches the user asked for."""
    torch.manual_seed(7)
    plain = epoch_batches(DataLoader(DATA, batch_size=6, shuffle=True))
    torch.manual_seed(7)
    loader, _ = make_resumable(DataLoader(DATA, batch_size=6, shuffle=True))
    assert epoch_batches(loader) == plain


def test_one_sampler_step_per_batch():
    sampler = ResumableSampler(RandomSampler(range(1000)), batch_size=100)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10 and all(len(b) == 100 for b in batches)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("done", [0, 4, 5, 11])
def test_a_permutation_becomes_batches_a_chunk_at_a_time(monkeypatch, drop_last, done):
    # 24 samples a chunk is rounded down to 3 batches of 7 over 100 samples: batches cross no
    # chunk, the last chunk is short, and a resume may start inside a chunk.
    import trainer.data.samplers as samplers

    monkeypatch.setattr(samplers, "CHUNK_SAMPLES", 24)
    torch.manual_seed(5)
    expected = list(BatchSampler(RandomSampler(range(100)), 7, drop_last))
    torch.manual_seed(5)
    first = ResumableSampler(RandomSampler(range(100)), batch_size=7, drop_last=drop_last)
    assert list(first) == expected
    resumed = ResumableSampler(RandomSampler(range(100)), batch_size=7, drop_last=drop_last)
    resumed.resume(first.position(done), done)
    assert list(resumed) == expected[done:]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(("size", "replicas"), [(12, 3), (11, 3), (10, 4), (3, 8)])
def test_a_distributed_samplers_order_is_the_samplers_own(shuffle, drop_last, size, replicas):
    # Drawn as a tensor, not by the sampler: the same indices for every rank and epoch, with
    # its padding (more than the data set when it has fewer samples than ranks) or its cut.
    from trainer.data.order import order_of, replay

    for rank in range(replicas):
        sampler = DistributedSampler(range(size), num_replicas=replicas, rank=rank,
                                     shuffle=shuffle, seed=5, drop_last=drop_last)
        order = order_of(sampler)
        for epoch in (0, 1, 2):
            sampler.set_epoch(epoch)
            expected = list(sampler)
            drawn, recipe = order.draw()
            assert recipe == {"epoch": epoch}
            assert replay(drawn) == expected
            assert replay(order.redraw({"epoch": epoch})) == expected


def test_a_shuffled_epoch_is_not_held_as_a_list_of_python_ints():
    import tracemalloc

    sampler = ResumableSampler(RandomSampler(range(1_000_000)), batch_size=32)
    tracemalloc.start()
    try:
        batches = iter(sampler)
        first = next(batches)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 32 and all(type(i) is int for i in first)
    assert peak < 8 * 2**20  # the order as a list of ints: about 36 MB here


def test_the_data_position_of_a_million_samples_is_under_4_kb(tmp_path):
    n = 1_000_000
    data = TensorDataset(torch.zeros(n, 8), torch.zeros(n, dtype=torch.long))
    trainer = Trainer(max_iters=3, work_dir=str(tmp_path), seed=0,
                      default_callbacks={"progress": None, "logger": None})
    trainer.fit(ToyNet(), DataLoader(data, batch_size=4, shuffle=True))
    ckpt = load_checkpoint(trainer.resolve_ckpt_path("last"))
    assert ckpt["meta"]["batch_idx"] == 3
    buffer = io.BytesIO()
    torch.save(ckpt["data"], buffer)
    assert buffer.tell() < 4096, ckpt["data"]
    (position,) = ckpt["data"]
    assert position["samples"] == 12


@pytest.mark.parametrize("options", [{}, {"num_samples": 7}, {"replacement": True}])
def test_a_random_samplers_order_is_drawn_as_the_sampler_draws_it(options):
    from trainer.data.order import order_of, replay

    sampler = RandomSampler(range(50), generator=torch.Generator().manual_seed(3), **options)
    order, recipe = order_of(sampler).draw()  # a permutation stays a tensor: replay lists it
    assert replay(order) == list(RandomSampler(
        range(50), generator=torch.Generator().manual_seed(recipe["seed"]), **options))
    assert replay(order_of(sampler).redraw(recipe)) == replay(order)
