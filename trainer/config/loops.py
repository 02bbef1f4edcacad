"""The loop fields of a config: ``train_cfg``, ``val_cfg`` and ``test_cfg`` as Trainer keywords."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

from trainer.arguments import check_dynamic_intervals
from trainer.config.types import check_kwargs, expect_mapping, resolve_type
from trainer.loops import BaseTrainLoop, EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop

__all__ = ["eval_loop", "train_loop_kwargs"]

TRAIN_LOOPS = {"EpochBasedTrainLoop": EpochBasedTrainLoop,
               "IterBasedTrainLoop": IterBasedTrainLoop}
EVAL_LOOPS = {"ValLoop": ValLoop, "TestLoop": TestLoop}


def train_loop_kwargs(train_cfg: Any, modules: Sequence[types.ModuleType] = ()
                      ) -> dict[str, Any]:
    """Trainer keywords for ``train_cfg``: ``max_epochs``/``max_iters``, ``val_begin``,
    ``val_interval`` and, for ``type=``, ``dynamic_intervals`` or a loop's own options,
    ``train_loop`` (a loop class, or ``dict(type=class, **options)``).

    Example:
        >>> train_loop_kwargs(dict(by_epoch=False, max_iters=1000, val_interval=100))
        {'max_iters': 1000, 'val_interval': 100}
    """
    cfg = dict(expect_mapping(train_cfg, "train_cfg", "dict(by_epoch=True, max_epochs=12)"))
    loop_type, by_epoch = cfg.pop("type", None), cfg.pop("by_epoch", None)
    if loop_type is not None and by_epoch is not None:
        raise ValueError(
            f"train_cfg has both type={loop_type!r} and by_epoch={by_epoch!r}; as in MMEngine "
            "give one: by_epoch=True/False picks a built-in loop, type= names a loop class "
            "(whose kind decides)")
    loop = None
    if loop_type is not None:
        loop = resolve_type(loop_type, TRAIN_LOOPS, "train_cfg loop", modules)
        if not (isinstance(loop, type) and issubclass(loop, BaseTrainLoop)):
            raise TypeError(f"train_cfg type {loop_type!r} must be a subclass of "
                            f"trainer.loops.BaseTrainLoop, got {loop!r}")
        if issubclass(loop, (EpochBasedTrainLoop, IterBasedTrainLoop)):
            by_epoch = issubclass(loop, EpochBasedTrainLoop)
    max_epochs, max_iters = cfg.pop("max_epochs", None), cfg.pop("max_iters", None)
    if by_epoch is None:
        by_epoch = max_iters is None
    if not isinstance(by_epoch, bool):
        raise TypeError(f"train_cfg by_epoch must be True or False, got {by_epoch!r}")
    kind, count, wrong = (("epoch", "max_epochs", "max_iters") if by_epoch
                          else ("iteration", "max_iters", "max_epochs"))
    value, other = (max_epochs, max_iters) if by_epoch else (max_iters, max_epochs)
    if other is not None:
        raise ValueError(f"train_cfg: {kind}-based training counts {count}, but {wrong}="
                         f"{other!r} was given; write {count}=... (or switch "
                         f"by_epoch={not by_epoch})")
    if value is None:
        raise ValueError(f"train_cfg: {kind}-based training needs {count}=..., got "
                         f"{dict(train_cfg)!r}")
    kwargs: dict[str, Any] = {count: value}
    for key in ("val_begin", "val_interval"):
        if key in cfg:
            kwargs[key] = cfg.pop(key)
    if "dynamic_intervals" in cfg:
        cfg["dynamic_intervals"] = check_dynamic_intervals(cfg["dynamic_intervals"])
    base = loop or (EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop)
    unknown = sorted(set(cfg) - {"dynamic_intervals"})
    if unknown and base in TRAIN_LOOPS.values():
        raise TypeError(f"train_cfg has unknown keys {unknown}; it takes by_epoch, "
                        "max_epochs/max_iters, val_begin, val_interval, dynamic_intervals and "
                        "type (a loop class, which may take more)")
    if cfg:
        check_kwargs(base, cfg, "train_cfg loop")
    if loop is not None or cfg:
        kwargs["train_loop"] = {"type": base, **cfg} if cfg else base
    return kwargs


def eval_loop(stage: str, cfg: Any, modules: Sequence[types.ModuleType] = ()
              ) -> tuple[type | None, bool]:
    """``(loop or None for the default, fp16)`` for ``val_cfg``/``test_cfg``; a loop with options
    of its own is ``dict(type=class, **options)``."""
    cfg = dict(expect_mapping(cfg, f"{stage}_cfg", "dict()"))
    default = ValLoop if stage == "val" else TestLoop
    fp16 = bool(cfg.pop("fp16", False))
    loop_type = cfg.pop("type", None)
    loop = default if loop_type is None else resolve_type(
        loop_type, EVAL_LOOPS, f"{stage}_cfg loop", modules)
    if not (isinstance(loop, type) and issubclass(loop, default)):
        raise TypeError(f"{stage}_cfg type {loop_type!r} must be a subclass of "
                        f"trainer.loops.{default.__name__}, got {loop!r}")
    if cfg:
        check_kwargs(loop, cfg, f"{stage}_cfg loop")
    if cfg:
        return {"type": loop, **cfg}, fp16
    return (None if loop is default else loop), fp16
