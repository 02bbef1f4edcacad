"""Build MMEngine's ``*_dataloader`` dicts: data sets, samplers, collate functions, loaders."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data.dataloader import default_collate

from trainer import dist
from trainer.arguments import check_positive_int
from trainer.config.types import build_object, check_kwargs, resolve_type


class RepeatDataset(Dataset):
    """MMEngine's ``RepeatDataset``: ``dataset`` repeated ``times`` times (shorter epochs' cure).

    Example:
        >>> len(RepeatDataset([1, 2, 3], times=2)), RepeatDataset([1, 2, 3], times=2)[4]
        (6, 2)
    """

    def __init__(self, dataset: Any, times: int, lazy_init: bool = False) -> None:
        check_positive_int("RepeatDataset times", times)
        self.dataset, self.times = dataset, times

    def __len__(self) -> int:
        return self.times * len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]


class DefaultSampler(Sampler[int]):
    """MMEngine's ``DefaultSampler`` in one process: the order depends on ``seed + epoch`` only.

    Args:
        dataset: the data set to index.
        shuffle: a new permutation each epoch (``set_epoch``) or the data set's order.
        seed: the permutation seed (MMEngine's default, a random one, is the plain
            ``DataLoader(shuffle=True)`` used when the config gives no seed).
        round_up: only matters with several processes (see ``build_dataloader``).
    """

    def __init__(self, dataset: Any, shuffle: bool = True, seed: int | None = None,
                 round_up: bool = True) -> None:
        self.dataset, self.shuffle, self.round_up = dataset, shuffle, round_up
        self.seed = 0 if seed is None else seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(len(self.dataset)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.dataset), generator=generator).tolist())

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def for_rank(self, rank: int, world_size: int) -> Sampler[int]:
        """Rank ``rank``'s share under DDP: the ``DistributedSampler`` torchrun's build makes.

        ``Trainer(devices=N)`` builds the config's loaders in the calling process, before the
        workers exist; each worker's strategy swaps this in, so every epoch the ranks together
        see each sample once, with the order of ``seed + epoch`` as under ``torchrun``.
        """
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(self.dataset, num_replicas=world_size, rank=rank,
                                  shuffle=self.shuffle, seed=self.seed, drop_last=not self.round_up)


def pseudo_collate(batch: Sequence[Any]) -> Any:
    """MMEngine's ``pseudo_collate``: transpose a list of samples without stacking anything.

    Example:
        >>> pseudo_collate([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}])
        {'x': [1, 2], 'y': ['a', 'b']}
    """
    first = batch[0]
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(pseudo_collate(s) for s in zip(*batch, strict=True)))
    if isinstance(first, Mapping):
        return type(first)({k: pseudo_collate([sample[k] for sample in batch]) for k in first})
    if isinstance(first, Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise ValueError("pseudo_collate: every sample of a batch must have the same length")
        return [pseudo_collate(list(s)) for s in zip(*batch, strict=True)]
    return list(batch)


DATASETS: dict[str, Any] = {"ConcatDataset": ConcatDataset, "RepeatDataset": RepeatDataset}
SAMPLERS: dict[str, Any] = {"DefaultSampler": DefaultSampler, "InfiniteSampler": DefaultSampler}
COLLATE_FUNCTIONS: dict[str, Any] = {"default_collate": default_collate,
                                     "pseudo_collate": pseudo_collate}
_MMENGINE_SAMPLER_KEYS = {"shuffle", "seed", "round_up"}


def build_dataset(cfg: Any, what: str, modules: Sequence[types.ModuleType] = ()) -> Any:
    """A data set object as is, or one built from ``dict(type=..., **kwargs)``.

    The wrappers ``ConcatDataset(datasets=[...])`` and ``RepeatDataset(dataset=..., times=n)``
    build the data sets inside them too.
    """
    if not isinstance(cfg, Mapping):
        if not (hasattr(cfg, "__getitem__") or hasattr(cfg, "__iter__")):
            raise TypeError(f"{what} must be a data set or dict(type=..., ...), "
                            f"got {type(cfg).__name__}")
        return cfg
    cfg = dict(cfg)
    factory = resolve_type(cfg.get("type"), DATASETS, what, modules)
    if factory is ConcatDataset:
        inner = cfg.pop("datasets", None)
        if not isinstance(inner, (list, tuple)) or not inner:
            raise ValueError(f"{what}: ConcatDataset needs datasets=[...], got {inner!r}")
        cfg["datasets"] = [build_dataset(d, f"{what}.datasets.{i}", modules)
                           for i, d in enumerate(inner)]
        cfg.pop("lazy_init", None)
        cfg.pop("ignore_keys", None)
    elif factory is RepeatDataset and "dataset" in cfg:
        cfg["dataset"] = build_dataset(cfg["dataset"], f"{what}.dataset", modules)
    dataset = build_object({**cfg, "type": factory}, DATASETS, what, modules)
    if not (hasattr(dataset, "__getitem__") or hasattr(dataset, "__iter__")):
        raise TypeError(f"{what}: {cfg['type']!r} returned a {type(dataset).__name__}, "
                        "not a data set (an object with __getitem__ and __len__, or __iter__)")
    return dataset


def build_dataloader(cfg: Any, what: str, modules: Sequence[types.ModuleType] = (), *,
                     shuffle_default: bool = False) -> Iterable:
    """A loader object as is, or a ``DataLoader`` from an MMEngine ``*_dataloader`` dict.

    The dict holds ``dataset`` (an object or a dict) and the ``DataLoader`` arguments
    (``batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory``, ``drop_last``,
    ...), plus ``sampler=dict(type="DefaultSampler", shuffle=True, seed=None)`` (or
    ``InfiniteSampler``, any sampler class by path, or ``shuffle=`` alone; with neither, training
    data is shuffled and evaluation data is not), ``batch_sampler``, and ``collate_fn`` (a
    function, ``dict(type="default_collate")`` or ``dict(type="pseudo_collate")``).

    In one process a ``DefaultSampler`` without a seed is ``DataLoader(shuffle=...)``, whose
    order comes from the global RNG (which checkpoints restore); with a seed the order is
    ``seed + epoch``. Under ``torch.distributed`` it is a ``DistributedSampler`` with the seed
    (or one drawn on rank zero and shared) and ``drop_last=not round_up``.
    """
    if not isinstance(cfg, Mapping):
        if cfg is None or isinstance(cfg, (str, bytes)) or not hasattr(cfg, "__iter__"):
            raise TypeError(f"{what} must be a dict(dataset=..., batch_size=...) or a data "
                            f"loader, got {type(cfg).__name__}")
        return cfg
    cfg = dict(cfg)
    if "dataset" not in cfg:
        raise ValueError(f"{what} has no 'dataset'; write e.g. dict(dataset=dict(type="
                         "'mypkg.data.MyDataset', ...), batch_size=32, sampler=dict("
                         "type='DefaultSampler', shuffle=True))")
    dataset = build_dataset(cfg.pop("dataset"), f"{what}.dataset", modules)
    sampler_cfg, shuffle = cfg.pop("sampler", None), cfg.pop("shuffle", None)
    if sampler_cfg is not None and shuffle is not None:
        raise ValueError(f"{what}: give shuffle inside sampler=dict(type='DefaultSampler', "
                         "shuffle=...) or on its own, not both")
    batch_sampler_cfg = cfg.pop("batch_sampler", None)
    collate_fn = _collate_fn(cfg.pop("collate_fn", None), f"{what}.collate_fn", modules)
    worker_init_fn = cfg.pop("worker_init_fn", None)
    if isinstance(worker_init_fn, (str, Mapping)):
        worker_init_fn = _function(worker_init_fn, f"{what}.worker_init_fn", modules)
    if not cfg.get("num_workers"):  # torch refuses these without worker processes
        cfg.pop("persistent_workers", None)
        cfg.pop("prefetch_factor", None)
    for key in ("batch_sampler", "sampler", "shuffle", "collate_fn", "worker_init_fn"):
        cfg.pop(key, None)
    check_kwargs(DataLoader.__init__, cfg, what)

    sampler = _sampler(sampler_cfg, dataset, what, modules,
                       shuffle_default if shuffle is None else shuffle)
    kwargs = dict(cfg, collate_fn=collate_fn, worker_init_fn=worker_init_fn)
    if batch_sampler_cfg is not None:
        if isinstance(sampler, bool):
            sampler = RandomSampler(dataset) if sampler else SequentialSampler(dataset)
        batch_size = kwargs.pop("batch_size", 1)
        kwargs.pop("drop_last", None)
        batch_sampler = build_object(batch_sampler_cfg, {}, f"{what}.batch_sampler", modules,
                                     sampler=sampler, batch_size=batch_size)
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    if isinstance(sampler, bool):
        return DataLoader(dataset, shuffle=sampler, **kwargs)
    return DataLoader(dataset, sampler=sampler, **kwargs)


def _sampler(cfg: Any, dataset: Any, what: str, modules: Sequence[types.ModuleType],
             shuffle: bool) -> Any:
    """A sampler, or a bool meaning ``DataLoader(shuffle=...)``."""
    where = f"{what}.sampler"
    if cfg is None:
        cfg = {"type": "DefaultSampler", "shuffle": shuffle}
    if not isinstance(cfg, Mapping):
        if not hasattr(cfg, "__iter__"):
            raise TypeError(f"{where} must be a sampler or dict(type=...), got {cfg!r}")
        return cfg
    factory = resolve_type(cfg.get("type"), SAMPLERS, where, modules)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    if factory is not DefaultSampler:
        check_kwargs(factory, kwargs, where)
        return factory(dataset, **kwargs)
    unknown = sorted(set(kwargs) - _MMENGINE_SAMPLER_KEYS)
    if unknown:
        raise TypeError(f"{where}: {cfg['type']} does not take {unknown}; it takes "
                        f"{sorted(_MMENGINE_SAMPLER_KEYS)}")
    shuffle, seed = kwargs.get("shuffle", True), kwargs.get("seed")
    if not isinstance(shuffle, bool):
        raise TypeError(f"{where}: shuffle must be True or False, got {shuffle!r}")
    if dist.is_distributed():
        from torch.utils.data.distributed import DistributedSampler

        if seed is None:
            seed = dist.broadcast_object(int(torch.randint(2**31, ()).item()))
        return DistributedSampler(dataset, shuffle=shuffle, seed=seed,
                                  drop_last=not kwargs.get("round_up", True))
    if seed is None:
        return shuffle
    return DefaultSampler(dataset, shuffle=shuffle, seed=seed)


def _collate_fn(cfg: Any, what: str, modules: Sequence[types.ModuleType]) -> Callable | None:
    if cfg is None or (callable(cfg) and not isinstance(cfg, Mapping)):
        return cfg
    if isinstance(cfg, str):
        cfg = {"type": cfg}
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be a function or dict(type='default_collate'), got {cfg!r}")
    func = resolve_type(cfg.get("type"), COLLATE_FUNCTIONS, what, modules)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    return functools.partial(func, **kwargs) if kwargs else func


def _function(cfg: Any, what: str, modules: Sequence[types.ModuleType]) -> Callable:
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    func = resolve_type(cfg.pop("type", None), {}, what, modules)
    return functools.partial(func, **cfg) if cfg else func
