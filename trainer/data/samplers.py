"""Training loaders that can restart mid-epoch exactly where a checkpoint left them.

The loader is rebuilt around a :class:`ResumableSampler`, which draws each epoch's order as the
loader's own sampler would (the same draws from the same RNG) and, after a resume, draws it again
from its recipe and continues at the first batch not yet trained on. Skipped samples are never
loaded. With worker processes each batch's random streams are seeded from its position
(:mod:`trainer.data.workers`), so augmentations continue exactly too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from trainer.data.order import order_of, replay
from trainer.data.workers import SeededDataset, batch_seed

CHUNK_SAMPLES = 2**16  # of a permutation tensor, turned into a list at a time


def slices(order: list[Any], start: int, stop: int | None, size: int) -> Iterator[list[Any]]:
    """``order[start:stop]`` in lists of ``size`` (the last one shorter), from C iterators: no
    Python frame per batch."""
    stop = len(order) if stop is None else stop
    starts = range(start, stop, size)
    return map(order.__getitem__, map(slice, starts, range(start + size, stop + size, size)))


class ResumableSampler(Sampler):
    """The loader's batches, one step per batch, restartable at any batch of the epoch.

    Wraps the loader's sampler with its ``batch_size`` and ``drop_last`` (or, with
    ``batch_size=None``, a batch sampler or the sampler of a data set that yields whole batches:
    each item it yields is one batch). Each epoch's order is drawn once, as the wrapped sampler
    would draw it, and sliced into batches; :meth:`position` says how to draw it again and
    :meth:`resume` makes the next epoch continue it after the batches already trained on.

    Args:
        sampler: the loader's sampler or batch sampler.
        batch_size: samples per batch, or ``None`` when each item of ``sampler`` is a batch.
        drop_last: drop the last, incomplete batch.
        worker_seeds: yield ``(seed, batch)`` pairs for a :class:`SeededDataset`, with a seed
            per batch derived from one draw of ``generator`` per epoch (loaders with workers).
        generator: what the epoch's worker seed is drawn from (the global RNG when ``None``).
        rank: mixed into the worker seeds, so ranks augment differently.
    """

    def __init__(self, sampler: Iterable, batch_size: int | None = None, drop_last: bool = False,
                 worker_seeds: bool = False, generator: torch.Generator | None = None,
                 rank: int = 0) -> None:
        self.sampler = sampler
        self.order = order_of(sampler)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.worker_seeds, self.generator, self.rank = worker_seeds, generator, rank
        self._recipe: dict[str, Any] = {}
        self._resume: tuple[dict[str, Any], int] | None = None

    def __iter__(self) -> Iterator[Any]:
        # The order is drawn when the first batch is asked for, as torch's samplers draw it;
        # the batches after that come from C iterators, with no Python frame per batch.
        return chain.from_iterable(self._epoch())

    def _epoch(self) -> Iterator[Iterator[Any]]:
        """Yields one iterator: the epoch's batches, from its first not yet trained on."""
        if self._resume is not None:
            recipe, skip = self._resume
            self._resume = None
            # An order recorded by an older checkpoint replays whatever the sampler.
            order = replay(recipe["order"]) if "order" in recipe else self.order.redraw(recipe)
        else:
            order, recipe = self.order.draw()
            skip = 0
            if self.worker_seeds:
                recipe["worker_seed"] = int(torch.empty((), dtype=torch.int64).random_(
                    generator=self.generator))
        self._recipe = recipe
        batches = self._batches(order, skip)
        if self.worker_seeds:
            epoch_seed, rank = recipe["worker_seed"], self.rank
            batches = ((batch_seed(epoch_seed, rank, b), batch)
                       for b, batch in enumerate(batches, skip))
        yield batches

    def _batches(self, order: list[Any] | torch.Tensor, skip: int) -> Iterator[Any]:
        size = self.batch_size
        if size is None:
            return iter((order.tolist() if isinstance(order, torch.Tensor) else order)[skip:])
        stop = len(order) - len(order) % size if self.drop_last else len(order)
        if not isinstance(order, torch.Tensor):
            return slices(order, skip * size, stop, size)
        # A permutation tensor becomes Python ints a chunk at a time, as its batches are drawn.
        chunk = size * max(1, CHUNK_SAMPLES // size)
        return chain.from_iterable(map(
            lambda start: slices(order[start:min(start + chunk, stop)].tolist(), 0, None, size),
            range(skip * size, stop, chunk)))

    def __len__(self) -> int:
        length = len(self.sampler)  # type: ignore[arg-type]
        if self.batch_size is None:
            return length
        return length // self.batch_size if self.drop_last else -(-length // self.batch_size)

    def samples_per_epoch(self) -> int | None:
        """Samples in one epoch's batches (a short last batch as it is, a dropped one not);
        ``None`` when each item is a batch whose size is not known before it is drawn."""
        if self.batch_size is None:
            return None
        try:
            length = len(self.sampler)  # type: ignore[arg-type]
        except TypeError:  # a sampler without len
            return None
        return length - length % self.batch_size if self.drop_last else length

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def position(self, batches_done: int) -> dict[str, Any]:
        """How to draw the current epoch again, and how much of it is done: a few numbers,
        except for a sampler that can only be replayed (its order, as a tensor when flat)."""
        state = dict(self._recipe)
        if "order" in state:
            order = state["order"]
            state["order"] = (torch.tensor(order, dtype=torch.int64)
                              if all(isinstance(i, int) for i in order)
                              else [list(b) if isinstance(b, (list, tuple)) else b for b in order])
        state["batches"] = batches_done
        state["samples"] = batches_done * (self.batch_size or 1)
        return state

    def resume(self, state: dict[str, Any], batches_done: int) -> None:
        """Make the next epoch iteration continue ``state``'s epoch after ``batches_done``."""
        self._resume = (state, batches_done)


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


def make_resumable(loader: Any, rank: int = 0) -> tuple[Any, ResumableSampler | None]:
    """``loader`` rebuilt around a ``ResumableSampler``; unchanged when that is not possible.

    Only a plain ``DataLoader`` over a map-style data set can be rebuilt; other iterables are
    returned with ``None`` and resume by drawing and discarding the batches already trained on.
    """
    if not _rebuildable(loader):
        return loader, None
    for held in (loader.batch_sampler, loader.sampler):
        if isinstance(held, ResumableSampler):
            return loader, held
    kwargs = _loader_kwargs(loader)
    seeds = dict(worker_seeds=loader.num_workers > 0, generator=loader.generator, rank=rank)
    batches = loader.batch_sampler
    if type(batches) is BatchSampler:  # batch_size=N, or torch's own BatchSampler
        wrapper = ResumableSampler(batches.sampler, batches.batch_size, batches.drop_last, **seeds)
    else:  # the user's own batch sampler, or batch_size=None: every item is a batch
        wrapper = ResumableSampler(batches if batches is not None else loader.sampler, **seeds)
    if batches is not None:
        kwargs.update(batch_sampler=wrapper)
    else:
        kwargs.update(sampler=wrapper, batch_size=None)
    dataset = SeededDataset(loader.dataset) if wrapper.worker_seeds else loader.dataset
    return DataLoader(dataset, **kwargs), wrapper
