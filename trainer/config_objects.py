"""Build the objects a config names: a type by name or import path, with checked arguments.

``type=`` is a class or function, a name from the small table of the caller, a name found in a
module listed in the config's ``custom_imports``, or a dotted import path
(``"mypkg.models.Net"``). Mistakes name what was asked for and the closest known names.
Datasets, samplers, collate functions and data loaders (MMEngine's ``*_dataloader`` dicts) are
built here too.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import types
import warnings
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

__all__ = [
    "DefaultSampler", "RepeatDataset", "build_dataloader", "build_dataset", "build_object",
    "check_kwargs", "expect_mapping", "import_custom_modules", "pseudo_collate",
    "resolve_config_type",
]


def resolve_config_type(type_: Any, table: Mapping[str, Any], what: str,
                        modules: Sequence[types.ModuleType] = ()) -> Any:
    """The class or function ``type_`` names.

    Example:
        >>> resolve_config_type("torch.nn.Linear", {}, "model")
        <class 'torch.nn.modules.linear.Linear'>
    """
    if callable(type_):
        return type_
    if not isinstance(type_, str) or not type_:
        raise TypeError(f"{what} type must be a class, a function or a name, got {type_!r}")
    if type_ in table:
        return table[type_]
    if "." in type_:
        return _import(type_, what)
    for module in modules:
        if hasattr(module, type_):
            return getattr(module, type_)
    known = sorted({*table, *(n for m in modules for n in _public_names(m))})
    close = difflib.get_close_matches(type_, known, n=3, cutoff=0.6)
    hint = f" Closest known: {', '.join(map(repr, close))}." if close else ""
    shown = f" Known names: {known}." if known and len(known) <= 40 else ""
    raise ValueError(
        f"unknown {what} type {type_!r}.{hint}{shown} Give a dotted import path such as "
        f"'mypkg.module.{type_}', a class, or list the module that defines it in "
        "custom_imports=dict(imports=['mypkg.module'])")


def _import(path: str, what: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # not a module: try a shorter prefix
            raise ImportError(f"{what} type {path!r}: importing {module_name} failed: "
                              f"{err}") from err
        for depth, attr in enumerate(parts[cut:]):
            if not hasattr(found, attr):
                owner = ".".join(parts[:cut + depth])
                close = difflib.get_close_matches(attr, _public_names(found), n=3, cutoff=0.6)
                hint = f"; closest: {', '.join(map(repr, close))}" if close else ""
                raise ValueError(f"unknown {what} type {path!r}: {owner} has no {attr!r}{hint}")
            found = getattr(found, attr)
        return found
    raise ValueError(f"unknown {what} type {path!r}: no module {parts[0]!r} can be imported "
                     "(is the package installed, or the working directory on sys.path?)")


def _public_names(module: Any) -> list[str]:
    return [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]


def expect_mapping(value: Any, what: str, example: str) -> Mapping[str, Any]:
    """``value`` if it is a dict, else a ``TypeError`` showing an example of one."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict such as {example}, got {value!r}")
    return value


def check_kwargs(func: Callable, kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse keyword arguments ``func`` does not take, naming the ones it does."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: the call decides
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     inspect.Parameter.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            name = getattr(func, "__name__", type(func).__name__)
            raise TypeError(f"{what}: {name} does not take {key!r}.{hint} It takes {accepted}")


def build_object(cfg: Mapping[str, Any], table: Mapping[str, Any], what: str,
                 modules: Sequence[types.ModuleType] = (), **defaults: Any) -> Any:
    """``type(**defaults, **rest_of_cfg)`` with the type resolved and the arguments checked."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{what} must be a dict with a 'type' key, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise ValueError(f"{what} {dict(cfg)!r} has no 'type' key; write e.g. "
                         "dict(type='mypkg.module.Class', ...)")
    factory = resolve_config_type(cfg["type"], table, what, modules)
    kwargs = {**defaults, **{k: v for k, v in cfg.items() if k != "type"}}
    check_kwargs(factory, kwargs, what)
    return factory(**kwargs)


def import_custom_modules(custom_imports: Any) -> list[types.ModuleType]:
    """The modules named by MMEngine's ``custom_imports=dict(imports=[...])``."""
    if custom_imports is None:
        return []
    if not isinstance(custom_imports, Mapping) or "imports" not in custom_imports:
        raise TypeError("custom_imports must be dict(imports=['mypkg.module', ...], "
                        f"allow_failed_imports=False), got {custom_imports!r}")
    names = custom_imports["imports"]
    names = [names] if isinstance(names, str) else list(names)
    allow_failed = custom_imports.get("allow_failed_imports", False)
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            if not allow_failed:
                raise ImportError(f"custom_imports: cannot import {name!r}: {err}") from err
            warnings.warn(f"custom_imports: {name!r} failed to import and is skipped: {err}",
                          stacklevel=2)
    return modules


# --------------------------------------------------------------------------- data
class RepeatDataset(Dataset):
    """MMEngine's ``RepeatDataset``: ``dataset`` repeated ``times`` times (shorter epochs' cure).

    Example:
        >>> len(RepeatDataset([1, 2, 3], times=2)), RepeatDataset([1, 2, 3], times=2)[4]
        (6, 2)
    """

    def __init__(self, dataset: Any, times: int, lazy_init: bool = False) -> None:
        if isinstance(times, bool) or not isinstance(times, int) or times <= 0:
            raise ValueError(f"RepeatDataset times must be a positive int, got {times!r}")
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
    factory = resolve_config_type(cfg.get("type"), DATASETS, what, modules)
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
    factory = resolve_config_type(cfg.get("type"), SAMPLERS, where, modules)
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
    func = resolve_config_type(cfg.get("type"), COLLATE_FUNCTIONS, what, modules)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    return functools.partial(func, **kwargs) if kwargs else func


def _function(cfg: Any, what: str, modules: Sequence[types.ModuleType]) -> Callable:
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    func = resolve_config_type(cfg.pop("type", None), {}, what, modules)
    return functools.partial(func, **cfg) if cfg else func
