"""Checks of the Trainer's keyword arguments, so a mistake fails when the Trainer is built."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import torch

from trainer.suggestions import lightning_value_hint

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "cuda")
ACCELERATOR_ALIASES = {"gpu": "cuda"}  # Lightning's name for CUDA


def check_run_length(max_epochs: Any, max_iters: Any, *, required: bool = False) -> None:
    """At most one of the two (exactly one when ``required``, as ``fit`` needs)."""
    both, neither = max_epochs is not None and max_iters is not None, (max_epochs, max_iters) == (
        None, None)
    if both or (required and neither):
        what = "fit() needs" if neither else "pass"
        raise ValueError(
            f"{what} exactly one of max_epochs= (epoch-based training) or max_iters= "
            f"(iteration-based training); got max_epochs={max_epochs!r}, "
            f"max_iters={max_iters!r}. validate(), test() and predict() need neither")
    for name, value in (("max_epochs", max_epochs), ("max_iters", max_iters)):
        if value is not None:
            check_positive_int(name, value)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int and not a bool (``True`` is an int to Python, not to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number and not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """``value`` when it is an int >= 1 (or ``None`` with ``allow_none``); else a ``ValueError``.

    Example:
        >>> check_positive_int("val_interval", 5)
        5
        >>> check_positive_int("val_interval", True)
        Traceback (most recent call last):
        ...
        ValueError: val_interval must be a positive int, got True
    """
    if (value is None and allow_none) or (is_int(value) and value > 0):
        return value
    raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, "
                     f"got {value!r}")


def check_non_negative_int(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """``value`` when it is an int >= 0 (or ``None`` with ``allow_none``); else a ``ValueError``.

    Example:
        >>> check_non_negative_int("patience", -1)
        Traceback (most recent call last):
        ...
        ValueError: patience must be a non-negative int, got -1
    """
    if (value is None and allow_none) or (is_int(value) and value >= 0):
        return value
    raise ValueError(f"{name} must be a non-negative int{' or None' if allow_none else ''}, "
                     f"got {value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    value = str(value) if is_int(value) else value
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}"
                         f"{lightning_value_hint(name, value)}")
    return value


def check_accelerator(accelerator: Any) -> str:
    """One of ``ACCELERATORS``; Lightning's ``"gpu"`` is accepted as ``"cuda"``."""
    accelerator = ACCELERATOR_ALIASES.get(accelerator, accelerator) if isinstance(
        accelerator, str) else accelerator
    return check_choice("accelerator", accelerator, ACCELERATORS)


def check_loop(name: str, loop: Any, base: type) -> tuple[type, dict[str, Any]]:
    """``(loop class, its extra constructor options)`` from a class or ``dict(type=..., **options)``.

    Example:
        >>> from trainer.loops import IterBasedTrainLoop, BaseTrainLoop
        >>> check_loop("train_loop", dict(type=IterBasedTrainLoop, dynamic_intervals=[(10, 2)]),
        ...            BaseTrainLoop)[1]
        {'dynamic_intervals': [(10, 2)]}
    """
    options: dict[str, Any] = {}
    if isinstance(loop, Mapping):
        from trainer.config.types import check_kwargs, resolve_type  # loaded only when used

        options = {k: v for k, v in loop.items() if k != "type"}
        loop = resolve_type(loop.get("type"), {}, name)
        check_kwargs(loop, options, name)
    if not (isinstance(loop, type) and issubclass(loop, base)):
        raise TypeError(f"{name} must be a subclass of {base.__name__} or dict(type=that "
                        f"class, **its options), got {loop!r}")
    if "dynamic_intervals" in options:  # checked now rather than when fit builds the loop
        options["dynamic_intervals"] = check_dynamic_intervals(options["dynamic_intervals"])
    return loop, options


def check_dynamic_intervals(value: Any) -> list[tuple[int, int]]:
    """MMEngine's ``dynamic_intervals``: ``(milestone, interval)`` pairs, milestones increasing.

    Example:
        >>> check_dynamic_intervals([(10, 2), [20, 1]])
        [(10, 2), (20, 1)]
    """
    if value is None:
        return []
    pairs = list(value) if isinstance(value, (list, tuple)) else None
    ok = pairs is not None and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(is_int(v) and v > 0 for v in p)
        for p in pairs)
    milestones = [p[0] for p in pairs] if ok else []
    if not ok or milestones != sorted(set(milestones)):
        raise ValueError("dynamic_intervals must be a list of (milestone, interval) pairs of "
                         f"positive ints with increasing milestones, e.g. [(10, 2), (20, 1)], "
                         f"got {value!r}")
    return [(int(m), int(i)) for m, i in pairs]


def resolve_device(accelerator: str) -> torch.device:
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ValueError("accelerator='cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(accelerator)


def check_dataloader(name: str, loader: Any) -> Any:
    if loader is None or isinstance(loader, (torch.Tensor, str, bytes, dict)) or not hasattr(
            loader, "__iter__"):
        raise TypeError(
            f"{name} must be an iterable of batches such as a torch DataLoader, "
            f"got {type(loader).__name__}")
    return loader


def check_auto_scale_lr(cfg: Any) -> dict[str, Any] | None:
    """MMEngine's ``auto_scale_lr=dict(base_batch_size=N, enable=True)``; ``None`` when off."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict) or "base_batch_size" not in cfg:
        raise ValueError(
            f"auto_scale_lr must be dict(base_batch_size=N, enable=True), got {cfg!r}")
    check_positive_int("auto_scale_lr base_batch_size", cfg["base_batch_size"])
    return dict(cfg) if cfg.get("enable", True) else None


def check_optim_wrapper_types(cfg: Any) -> None:
    """Resolve every ``type`` of an optim_wrapper dict now, so a typo fails at construction."""
    if not isinstance(cfg, dict):
        return
    from trainer.config.types import resolve_type  # loaded only when a dict needs it
    from trainer.optim import OPTIM_WRAPPERS, OPTIMIZERS

    if "optimizer" not in cfg and "type" not in cfg:  # several optimizers, keyed by submodule
        for sub in cfg.values():
            check_optim_wrapper_types(sub)
        return
    if "type" in cfg:
        resolve_type(cfg["type"], OPTIM_WRAPPERS, "optim_wrapper")
    optimizer = cfg.get("optimizer")
    if isinstance(optimizer, dict) and "type" in optimizer:
        resolve_type(optimizer["type"], OPTIMIZERS, "optim_wrapper optimizer")


def check_scheduler_types(cfg: Any) -> None:
    """Resolve the ``type`` of each param_scheduler dict now."""
    for item in cfg if isinstance(cfg, (list, tuple)) else [cfg]:
        if isinstance(item, dict):
            from trainer.config.types import resolve_type
            from trainer.schedulers import SCHEDULERS

            if "type" not in item:
                raise ValueError(f"param_scheduler config {item!r} has no 'type' key")
            resolve_type(item["type"], SCHEDULERS, "param_scheduler")
