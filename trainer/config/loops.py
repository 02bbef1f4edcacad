"""The loop fields of a config: ``train_cfg``, ``val_cfg`` and ``test_cfg`` as Trainer keywords."""

from __future__ import annotations

import bisect
import types
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.arguments import is_int
from trainer.config.types import check_kwargs, expect_mapping, resolve_type
from trainer.loops import BaseTrainLoop, EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop

__all__ = ["eval_loop", "loop_class", "train_loop_kwargs"]

TRAIN_LOOPS = {"EpochBasedTrainLoop": EpochBasedTrainLoop,
               "IterBasedTrainLoop": IterBasedTrainLoop}
EVAL_LOOPS = {"ValLoop": ValLoop, "TestLoop": TestLoop}


def train_loop_kwargs(train_cfg: Any, modules: Sequence[types.ModuleType] = ()
                      ) -> dict[str, Any]:
    """Trainer keywords for ``train_cfg``: ``max_epochs``/``max_iters``, ``val_begin``,
    ``val_interval`` and, for ``type=`` or ``dynamic_intervals``, ``train_loop``.

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
    dynamic = _dynamic_intervals(cfg.pop("dynamic_intervals", None))
    base = loop or (EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop)
    if cfg and base in TRAIN_LOOPS.values():
        raise TypeError(f"train_cfg has unknown keys {sorted(cfg)}; it takes by_epoch, "
                        "max_epochs/max_iters, val_begin, val_interval, dynamic_intervals and "
                        "type (a loop class, which may take more)")
    if cfg:
        check_kwargs(base, cfg, "train_cfg loop")
    if loop is not None or cfg or dynamic:
        kwargs["train_loop"] = loop_class(base, cfg, dynamic)
    return kwargs


def eval_loop(stage: str, cfg: Any, modules: Sequence[types.ModuleType] = ()
              ) -> tuple[type | None, bool]:
    """``(loop class or None for the default, fp16)`` for ``val_cfg``/``test_cfg``."""
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
    return (None if loop is default and not cfg else loop_class(loop, cfg, None)), fp16


def _dynamic_intervals(value: Any) -> list[tuple[int, int]] | None:
    if value is None:
        return None
    pairs = list(value) if isinstance(value, (list, tuple)) else None
    ok = pairs is not None and all(
        isinstance(p, (list, tuple)) and len(p) == 2
        and all(is_int(v) and v > 0 for v in p)
        for p in pairs)
    milestones = [p[0] for p in pairs] if ok else []
    if not ok or milestones != sorted(set(milestones)):
        raise ValueError("train_cfg dynamic_intervals must be a list of (milestone, interval) "
                         "pairs of positive ints with increasing milestones, e.g. "
                         f"[(10, 2), (20, 1)], got {value!r}")
    return [(int(m), int(i)) for m, i in pairs]


def loop_class(base: type, kwargs: Mapping[str, Any],
               dynamic: Sequence[tuple[int, int]] | None) -> type:
    """``base``, or a subclass with extra constructor arguments and MMEngine's dynamic intervals.

    With ``dynamic_intervals=[(m1, i1), (m2, i2)]`` validation runs every ``val_interval``
    until ``m1`` epochs/iterations are done, every ``i1`` from then on, every ``i2`` from
    ``m2`` on (MMEngine's ``_decide_current_val_interval``).
    """
    if not kwargs and not dynamic:
        return base
    namespace: dict[str, Any] = {"__module__": base.__module__, "__doc__": base.__doc__}
    if kwargs:
        bound = dict(kwargs)

        def __init__(self: Any, *args: Any, **given: Any) -> None:
            base.__init__(self, *args, **{**bound, **given})
        namespace["__init__"] = __init__
    if dynamic:
        milestones = [m for m, _ in dynamic]
        intervals = [i for _, i in dynamic]

        def should_validate(self: Any, done: int, total: int | None) -> bool:
            first = self.__dict__.setdefault("_first_val_interval", self.val_interval)
            step = bisect.bisect(milestones, done)
            self.val_interval = first if step == 0 else intervals[step - 1]
            return base.should_validate(self, done, total)
        namespace["should_validate"] = should_validate
    return type(base.__name__, (base,), namespace)
