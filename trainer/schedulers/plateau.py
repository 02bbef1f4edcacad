"""Reduce a parameter when a validation metric stops improving (MMEngine's ReduceOnPlateau).

Unlike the other schedulers this one is driven by a metric: ``step()`` without arguments only
counts a training epoch (the window ``[begin, end)`` is in those epochs), and
``step(metrics)`` after a validation looks at ``metrics[monitor]``. The Trainer's scheduler
callback makes both calls; ``need_val_args = True`` is how it (and MMEngine's hook) tells.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.dist import is_main_process
from trainer.schedulers.base import (
    INF,
    ParamScheduler,
    SchedulerArgumentError,
    param_groups_of,
)

RULES = ("less", "greater")
THRESHOLD_RULES = ("rel", "abs")


class ReduceOnPlateauParamScheduler(ParamScheduler):
    """Multiply the value by ``factor`` after ``patience`` validations without improvement.

    A validation improves on the best so far when its metric beats it by more than
    ``threshold``: relatively (``best * (1 - threshold)`` for ``rule="less"``,
    ``best * (1 + threshold)`` for ``"greater"``) or absolutely (``best -/+ threshold``) as
    ``threshold_rule`` says. After a reduction, ``cooldown`` validations are not counted as bad.
    A value never goes below ``min_value``, and a reduction smaller than ``eps`` is skipped.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        monitor: key of the validation metric to watch. Defaults to ``"loss"``.
        rule: ``"less"`` (lower is better) or ``"greater"``. Defaults to ``"less"``.
        factor: multiplier applied at a plateau, in ``[0, 1)``. Defaults to 0.1.
        patience: validations without improvement that are tolerated. Defaults to 10.
        threshold: how much better counts as an improvement (>= 0). Defaults to 1e-4.
        threshold_rule: ``"rel"`` or ``"abs"``. Defaults to ``"rel"``.
        cooldown: validations ignored after a reduction. Defaults to 0.
        min_value: lower bound, one for all param groups or one per group. Defaults to 0.
        eps: smallest change worth making. Defaults to 1e-8.
        begin, end: window, in training epochs, in which validations count.
        last_step, by_epoch, verbose: see ``ParamScheduler``; ``by_epoch`` must be True.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = ReduceOnPlateauParamScheduler(opt, "lr", monitor="loss", patience=1)
        >>> for loss in (1.0, 1.0, 1.0):
        ...     s.step()                          # a training epoch
        ...     s.step({"loss": loss})            # its validation
        >>> s.get_last_value()
        [0.1]
    """

    need_val_args = True

    def __init__(self, optimizer: Any, param_name: str, monitor: str = "loss",
                 rule: str = "less", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_rule: str = "rel", cooldown: int = 0,
                 min_value: float | Sequence[float] = 0., eps: float = 1e-8, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        owner = type(self).__name__
        if by_epoch is not True:
            raise SchedulerArgumentError(
                f"{owner} only supports by_epoch=True (it is stepped after validations), "
                f"got by_epoch={by_epoch!r}")
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{owner}: monitor must be the name of a validation metric, "
                            f"got {monitor!r}")
        self.monitor = monitor
        if rule not in RULES:
            raise ValueError(f"{owner}: rule must be one of {RULES} (mode {rule!r} is "
                             "unknown)")
        if threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"{owner}: threshold_rule must be one of {THRESHOLD_RULES} "
                             f"(threshold mode {threshold_rule!r} is unknown)")
        self.rule, self.threshold_rule = rule, threshold_rule
        self.threshold = self._real("threshold", threshold, low=0)
        if not (isinstance(factor, numbers.Real) and 0 <= factor < 1):
            raise ValueError(f"{owner}: factor should be < 1.0 (and >= 0), got {factor!r}")
        self.factor = factor
        self.patience = self._whole("patience", patience, minimum=0)
        self.cooldown = self._whole("cooldown", cooldown, minimum=0)
        self.eps = self._real("eps", eps, low=0)
        groups = param_groups_of(optimizer, owner)
        if isinstance(min_value, (list, tuple)):
            if len(min_value) != len(groups):
                raise ValueError(f"{owner}: expected {len(groups)} min_value entries (one per "
                                 f"param group), got {len(min_value)}")
            self.min_values = [self._real("each min_value", v) for v in min_value]
        else:
            self.min_values = [self._real("min_value", min_value)] * len(groups)
        # Any first metric is an improvement (MMEngine starts from +-1e9, so a metric beyond
        # that never improves there).
        self.rule_worse = math.inf if rule == "less" else -math.inf
        self.best: float = self.rule_worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        # step() without metrics (the one at the end of __init__) does not record values.
        self._last_value = [group[self.param_name] for group in self.optimizer.param_groups]

    def step(self, metrics: Mapping[str, Any] | None = None) -> None:
        """Count a training epoch (no argument) or judge a validation's ``metrics``."""
        if metrics is None:
            self._global_step += 1
            return
        if not isinstance(metrics, Mapping):
            raise TypeError(f"{type(self).__name__}.step: metrics type should be dict, "
                            f"got {type(metrics).__name__}")
        if self.begin <= self._global_step < self.end:
            if self.monitor not in metrics:
                raise KeyError(f"{type(self).__name__}: monitor={self.monitor!r} is not among "
                               f"the validation metrics {sorted(metrics)}")
            self.last_step += 1
            self._judge(float(metrics[self.monitor]))
        self._last_value = [group[self.param_name] for group in self.optimizer.param_groups]

    def _judge(self, metric: float) -> None:
        if self._is_better(metric, self.best):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad validations in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups,
                                                   self._get_value(), strict=False)):
                if group[self.param_name] - value > self.eps:
                    group[self.param_name] = value
                    if self.verbose and is_main_process():
                        print(f"{type(self).__name__}: {self.param_name} of param group {i} "
                              f"reduced to {value:.4e} after validation {self.last_step}")
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def _get_value(self) -> list[float]:
        return [max(float(group[self.param_name]) * self.factor, low)
                for group, low in zip(self.optimizer.param_groups, self.min_values,
                                      strict=False)]

    def _is_better(self, value: float, best: float) -> bool:
        if math.isnan(value):
            return False
        if self.threshold_rule == "rel":
            scale = 1. - self.threshold if self.rule == "less" else 1. + self.threshold
            target = best * scale
        else:
            target = best - self.threshold if self.rule == "less" else best + self.threshold
        return value < target if self.rule == "less" else value > target

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, **kwargs: Any) -> ParamScheduler:
        raise TypeError(f"{cls.__name__} is stepped after validations, so it has no "
                        "iteration-based form; drop convert_to_iter_based")
