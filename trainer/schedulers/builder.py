"""Build the Trainer's ``param_scheduler`` argument into a list of schedulers.

Config dicts are MMEngine's: ``dict(type="MultiStepLR", milestones=[6, 8], by_epoch=True,
begin=0, end=12, convert_to_iter_based=False)``. ``type`` is a name from ``SCHEDULERS``, a
class, or a dotted import path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from trainer.schedulers.base import ParamScheduler
from trainer.schedulers.variants import SCHEDULERS

_WHAT = "param_scheduler"


def build_param_schedulers(cfg: Any, optim_wrapper: Any, *, epoch_length: int | None,
                           max_epochs: int | None, max_iters: int | None
                           ) -> list[ParamScheduler]:
    """Build one scheduler, a config dict, or a list of them, in order.

    Scheduler objects are passed through unchanged. For a dict, ``optimizer`` is
    ``optim_wrapper`` and ``convert_to_iter_based=True`` (with ``by_epoch=True``) builds the
    iteration-based equivalent through ``build_iter_from_epoch(..., epoch_length=...)``.

    Unlike MMEngine, a missing ``end`` always means the end of the run:

    * ``by_epoch=True``: ``max_epochs``; when the run is given as ``max_iters``, the number of
      passes over the loader, ``ceil(max_iters / epoch_length)``.
    * ``by_epoch=False``: ``max_iters``; in epoch-based training ``max_epochs * epoch_length``.
    * ``convert_to_iter_based=True``: the run's end in iterations, also in iteration-based
      training, where MMEngine's default (its loop's one "epoch") silently cut the converted
      schedule to a single epoch. An explicit ``end`` converts to ``int(end * epoch_length)``.

    ``T_max`` (cosine) and ``total_steps`` (1cycle) then default to ``end - begin`` as in
    MMEngine. When neither ``max_epochs`` nor ``max_iters`` is known, ``end`` stays at ``INF``.

    Args:
        cfg: a scheduler, a dict, a list of them, or ``None`` (no schedulers).
        optim_wrapper: the optimizer (or wrapper) whose param groups are scheduled.
        epoch_length: iterations per epoch, ``None`` when the train loader has no ``len()``.
        max_epochs: length of an epoch-based run (may be given with ``max_iters``).
        max_iters: length of an iteration-based run.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> warmup, decay = build_param_schedulers(
        ...     [dict(type="LinearLR", start_factor=0.01, by_epoch=False, end=50),
        ...      dict(type="MultiStepLR", milestones=[8, 11], convert_to_iter_based=True)],
        ...     opt, epoch_length=100, max_epochs=12, max_iters=None)
        >>> decay.by_epoch, decay.end, sorted(decay.milestones)
        (False, 1200, [800, 1100])
    """
    for name, value in (("epoch_length", epoch_length), ("max_epochs", max_epochs),
                        ("max_iters", max_iters)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise ValueError(f"build_param_schedulers: {name} must be a positive int or None, "
                             f"got {value!r}")
    if cfg is None:
        return []
    items = list(cfg) if isinstance(cfg, Sequence) and not isinstance(cfg, str) else [cfg]
    run = _Run(epoch_length, max_epochs, max_iters)
    schedulers = []
    for item in items:
        scheduler = _build_one(item, optim_wrapper, run) if isinstance(item, Mapping) else item
        if not _is_scheduler(scheduler):
            raise TypeError(
                f"{_WHAT} must be a scheduler from trainer.schedulers (MMEngine's names, such as "
                f"MultiStepLR) or a dict with a 'type' key, got {type(scheduler).__name__}; "
                "torch.optim.lr_scheduler objects have no by_epoch and are not supported"
            )
        schedulers.append(scheduler)
    return schedulers


def _is_scheduler(obj: Any) -> bool:
    """A ``ParamScheduler``, or anything with its stepping and state interface."""
    return isinstance(obj, ParamScheduler) or (
        isinstance(getattr(obj, "by_epoch", None), bool)
        and all(callable(getattr(obj, m, None)) for m in ("step", "state_dict", "load_state_dict"))
    )


def _build_one(cfg: Mapping[str, Any], optim_wrapper: Any, run: _Run) -> Any:
    from trainer.config.types import build_object, resolve_type  # loaded when a dict is used

    cfg = dict(cfg)
    name = cfg.get("type", "?")
    convert = cfg.pop("convert_to_iter_based", False)
    if not isinstance(convert, bool):
        raise TypeError(f"{_WHAT} {name}: convert_to_iter_based must be True or False, "
                        f"got {convert!r}")
    by_epoch = cfg.get("by_epoch", True)
    if not convert:
        if cfg.get("end") is None:
            end = run.epochs(name) if by_epoch else run.iters(name)
            cfg.pop("end", None)
            if end is not None:
                cfg["end"] = end
        return build_object(cfg, SCHEDULERS, _WHAT, optimizer=optim_wrapper)

    if by_epoch is not True:
        raise ValueError(f"{_WHAT} {name}: convert_to_iter_based=True converts an epoch-based "
                         f"schedule and needs by_epoch=True, got by_epoch={by_epoch!r}")
    if run.epoch_length is None:
        raise ValueError(f"{_WHAT} {name}: convert_to_iter_based=True needs the number of "
                         "iterations per epoch, but the training dataloader has no len(); "
                         "give the schedule in iterations with by_epoch=False instead")
    if "type" not in cfg:
        raise ValueError(f"{_WHAT} config {cfg!r} has no 'type' key")
    cls = resolve_type(cfg.pop("type"), SCHEDULERS, _WHAT)
    if not callable(getattr(cls, "build_iter_from_epoch", None)):
        raise TypeError(f"{_WHAT} {name}: {cls!r} has no build_iter_from_epoch, so "
                        "convert_to_iter_based=True cannot be used with it")
    if cfg.get("end") is None:
        cfg.pop("end", None)
        iters = run.iters(name)
        if iters is not None:
            # An exact number of epochs, so int(end * epoch_length) gives back ``iters``.
            cfg["end"] = Fraction(iters, run.epoch_length)
    return cls.build_iter_from_epoch(optim_wrapper, epoch_length=run.epoch_length, **cfg)


class _Run:
    """The length of the run, in epochs or in iterations, for default ``end`` values."""

    def __init__(self, epoch_length: int | None, max_epochs: int | None,
                 max_iters: int | None) -> None:
        self.epoch_length = epoch_length
        self.max_epochs = max_epochs
        self.max_iters = max_iters

    def epochs(self, name: str) -> int | None:
        if self.max_epochs is not None or self.max_iters is None:
            return self.max_epochs
        self._need_epoch_length(name, "an epoch-based")
        return -(-self.max_iters // self.epoch_length)

    def iters(self, name: str) -> int | None:
        if self.max_iters is not None or self.max_epochs is None:
            return self.max_iters
        self._need_epoch_length(name, "an iteration-based")
        return self.max_epochs * self.epoch_length

    def _need_epoch_length(self, name: str, kind: str) -> None:
        if self.epoch_length is None:
            raise ValueError(
                f"{_WHAT} {name}: cannot default the end of {kind} schedule to the end of the "
                "run, because the training dataloader has no len() to convert between epochs "
                "and iterations; give `end` explicitly"
            )
