"""Training loaders that can restart mid-epoch exactly where a checkpoint left them.

The loader's sampler is wrapped so that each epoch's order is recorded as it is drawn (with the
same draws from the global RNG as the plain sampler) and, after a resume, replayed from the
first batch not yet trained on. Skipped samples are never loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)


class ResumableSampler(Sampler):
    """Wrap a sampler (``unit`` = batch size) or a batch sampler (``unit`` = 1).

    Iterating draws the wrapped sampler's whole order for the epoch at the first ``next`` (as
    the wrapped sampler would), unless ``resume`` handed it an order to continue.
    """

    def __init__(self, sampler: Iterable, unit: int) -> None:
        self.sampler = sampler
        self.unit = unit
        self.epoch_order: list[Any] = []
        self._resume: tuple[list[Any], int] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._resume is not None:
            order, skip = self._resume
            self._resume = None
        else:
            order, skip = list(self.sampler), 0
        self.epoch_order = order
        yield from order[skip * self.unit:]

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's order, as a tensor when it is a flat list of ints."""
        order = self.epoch_order
        if all(isinstance(i, int) for i in order):
            return {"order": torch.tensor(order, dtype=torch.int64)}
        return {"order": [list(b) if isinstance(b, (list, tuple)) else b for b in order]}

    def resume(self, state: dict[str, Any], batches_done: int) -> None:
        """Make the next epoch iteration continue ``state``'s order after ``batches_done``."""
        order = state["order"]
        self._resume = (order.tolist() if isinstance(order, torch.Tensor) else order, batches_done)


class ShardSampler(Sampler):
    """Rank ``r`` of ``n`` takes samples ``r, r + n, r + 2n, …``: no padding, no duplicates.

    Evaluation over N processes then sees every sample exactly once, so metrics equal those of
    one process (``DistributedSampler`` pads ranks to equal length with repeated samples).
    """

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def _rebuildable(loader: Any) -> bool:
    return type(loader) is DataLoader and not isinstance(loader.dataset, IterableDataset)


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    """Every ``DataLoader`` argument of ``loader`` except how it samples."""
    return dict(
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator, prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers, pin_memory_device=loader.pin_memory_device,
        in_order=getattr(loader, "in_order", True),
    )


def _with_sampler(loader: DataLoader, sampler: Sampler) -> DataLoader:
    """``loader`` with automatic batching over ``sampler`` instead of its own."""
    return DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                      sampler=sampler, **_loader_kwargs(loader))


def _plain_sampler(loader: DataLoader) -> bool:
    """Automatic batching over torch's own random or sequential sampler."""
    return loader.batch_size is not None and type(loader.sampler) in (RandomSampler,
                                                                      SequentialSampler)


def _rank_sampler(loader: DataLoader, rank: int, world_size: int, seed: int) -> Sampler | None:
    """This rank's share of ``loader.sampler``; ``None`` when it cannot be split here.

    A sampler that knows how to split itself offers ``for_rank(rank, world_size)`` (the config
    layer's ``DefaultSampler``, built in the caller before ``devices=N`` starts the workers).
    """
    if _plain_sampler(loader):
        return DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank,
                                  shuffle=isinstance(loader.sampler, RandomSampler), seed=seed)
    for_rank = getattr(loader.sampler, "for_rank", None)
    return for_rank(rank, world_size) if loader.batch_size is not None and for_rank else None


def distribute_train_loader(loader: Any, rank: int, world_size: int, seed: int) -> Any:
    """Replace a plain sampler by a ``DistributedSampler`` that keeps the user's ``shuffle``."""
    if world_size == 1 or not _rebuildable(loader):
        return loader
    sampler = _rank_sampler(loader, rank, world_size, seed)
    return loader if sampler is None else _with_sampler(loader, sampler)


def shard_eval_loader(loader: Any, rank: int, world_size: int) -> Any:
    """Give each rank its own share of an evaluation loader, without padding."""
    if world_size == 1 or not _rebuildable(loader) or not _plain_sampler(loader):
        return loader
    return _with_sampler(loader, ShardSampler(len(loader.dataset), rank, world_size))


def make_resumable(loader: Any) -> tuple[Any, ResumableSampler | None]:
    """``loader`` rebuilt around a ``ResumableSampler``; unchanged when that is not possible.

    Only a plain ``DataLoader`` over a map-style data set can be rebuilt; other iterables are
    returned with ``None`` and resume by drawing and discarding the batches already trained on.
    """
    if not _rebuildable(loader):
        return loader, None
    if isinstance(loader.batch_sampler, ResumableSampler):
        return loader, loader.batch_sampler
    if isinstance(loader.sampler, ResumableSampler):
        return loader, loader.sampler
    if loader.batch_size is not None:  # automatic batching over loader.sampler
        wrapper = ResumableSampler(loader.sampler, loader.batch_size)
        return _with_sampler(loader, wrapper), wrapper
    kwargs = _loader_kwargs(loader)
    if loader.batch_sampler is not None:  # the user's own batch sampler
        wrapper = ResumableSampler(loader.batch_sampler, 1)
        kwargs.update(batch_sampler=wrapper)
    else:  # batch_size=None: the data set yields whole batches
        wrapper = ResumableSampler(loader.sampler, 1)
        kwargs.update(sampler=wrapper, batch_size=None)
    return DataLoader(loader.dataset, **kwargs), wrapper
