"""How an epoch's sample order is drawn, and drawn again after a resume from a few numbers.

A checkpoint must not grow with the data set, so it stores the recipe of the epoch's order (the
seed a ``RandomSampler`` drew, a ``DistributedSampler``'s epoch, a stateful sampler's own state)
instead of the order. Only a sampler whose order cannot be drawn again has it recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler


class RecordedOrder:
    """A sampler of unknown kind: its order is kept, and replayed on resume."""

    def __init__(self, sampler: Iterable) -> None:
        self.sampler = sampler

    def draw(self) -> tuple[list[Any], dict[str, Any]]:
        order = list(self.sampler)
        return order, {"order": order}

    def redraw(self, state: dict[str, Any]) -> list[Any]:
        return replay(state["order"])


class SequentialOrder(RecordedOrder):
    """``0, 1, …, n-1`` every epoch: nothing to record."""

    def draw(self) -> tuple[list[Any], dict[str, Any]]:
        return list(self.sampler), {}

    def redraw(self, state: dict[str, Any]) -> list[Any]:
        return list(self.sampler)


class SeededOrder(RecordedOrder):
    """A ``RandomSampler``: one seed per epoch, drawn as the sampler itself would draw it.

    The draw uses the sampler's generator (the global RNG when it has none) exactly once, like
    ``RandomSampler.__iter__``, and the order is the sampler's own for that seed, so a loader
    gives the same batches as it would without the trainer.
    """

    def draw(self) -> tuple[list[Any] | torch.Tensor, dict[str, Any]]:
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.sampler.generator))
        return self.redraw({"seed": seed}), {"seed": seed}

    def redraw(self, state: dict[str, Any]) -> list[Any] | torch.Tensor:
        sampler = self.sampler
        generator = torch.Generator().manual_seed(int(state["seed"]))
        n = len(sampler.data_source)  # type: ignore[arg-type]
        if not sampler.replacement and sampler.num_samples == n:
            # The permutation the sampler yields one by one, without a generator step for every
            # sample, and as a tensor: as Python ints 10M samples take 380 MB and half a second.
            return torch.randperm(n, generator=generator)
        own, sampler.generator = sampler.generator, generator
        try:
            return list(sampler)
        finally:
            sampler.generator = own


class EpochOrder(RecordedOrder):
    """A ``DistributedSampler``: its order is a function of its seed and epoch.

    It is drawn here as the sampler draws it, but as a tensor: the sampler itself builds the
    whole data set's order as Python ints on every rank (380 MB at 10M samples, each epoch).
    """

    def draw(self) -> tuple[torch.Tensor, dict[str, Any]]:
        return self._share(), {"epoch": self.sampler.epoch}

    def redraw(self, state: dict[str, Any]) -> torch.Tensor:
        self.sampler.set_epoch(int(state["epoch"]))
        return self._share()

    def _share(self) -> torch.Tensor:
        """This rank's indices for the sampler's current epoch."""
        sampler = self.sampler
        n = len(sampler.dataset)  # type: ignore[arg-type]
        if sampler.shuffle:
            generator = torch.Generator().manual_seed(sampler.seed + sampler.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if sampler.drop_last:
            order = order[:sampler.total_size]
        else:  # the sampler evens out the ranks with samples from the start, repeated
            padding = sampler.total_size - n
            order = torch.cat([order, order.repeat(-(-padding // n))[:padding]])
        # Its own share, copied: the whole order is not kept for the epoch.
        return order[sampler.rank:sampler.total_size:sampler.num_replicas].contiguous()


class StatefulOrder(RecordedOrder):
    """A sampler with ``state_dict``/``load_state_dict``: its state as the epoch begins."""

    def draw(self) -> tuple[list[Any], dict[str, Any]]:
        state = self.sampler.state_dict()
        return list(self.sampler), {"sampler": state}

    def redraw(self, state: dict[str, Any]) -> list[Any]:
        self.sampler.load_state_dict(state["sampler"])
        return list(self.sampler)


def replay(order: Any) -> list[Any]:
    """A recorded order (a tensor of indices, or a list of them or of batches) as a list."""
    return order.tolist() if isinstance(order, torch.Tensor) else list(order)


def order_of(sampler: Iterable) -> RecordedOrder:
    """The cheapest way to draw ``sampler``'s epoch order again."""
    kind = type(sampler)
    if kind is SequentialSampler:
        return SequentialOrder(sampler)
    if kind is RandomSampler:
        return SeededOrder(sampler)
    if kind is DistributedSampler:
        return EpochOrder(sampler)
    if callable(getattr(sampler, "state_dict", None)) and callable(
            getattr(sampler, "load_state_dict", None)):
        return StatefulOrder(sampler)
    return RecordedOrder(sampler)
