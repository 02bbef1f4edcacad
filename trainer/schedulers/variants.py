"""The learning-rate and momentum schedulers, under MMEngine's class names.

Each is its ``*ParamScheduler`` with ``param_name`` fixed, so it takes the same arguments
minus ``param_name``: ``MultiStepLR(optimizer, milestones=[6, 8], gamma=0.1, by_epoch=True)``.
Momentum schedulers drive ``momentum`` for SGD-style optimizers and ``betas[0]`` for Adam-style
ones, as MMEngine does.

Example:
    >>> import torch
    >>> opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    >>> lr = StepLR(opt, step_size=1, gamma=0.5)
    >>> mom = StepMomentum(opt, step_size=1, gamma=0.5)
    >>> lr.step(); mom.step()
    >>> opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]
    (0.05, (0.45, 0.999))
"""

from __future__ import annotations

import inspect
from typing import Any

from trainer.schedulers.base import ParamScheduler, param_groups_of
from trainer.schedulers.cyclic import (
    CosineAnnealingParamScheduler,
    CosineRestartParamScheduler,
    OneCycleParamScheduler,
)
from trainer.schedulers.decay import (
    ConstantParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    StepParamScheduler,
)


class _FixedParamName:
    """Fills in ``param_name`` and shows the remaining arguments in ``inspect.signature``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # a subclass with its own arguments keeps its own
            cls.__signature__ = None
            return
        schedule = next((b for b in cls.__mro__ if issubclass(b, ParamScheduler)
                         and not issubclass(b, _FixedParamName)), None)
        if schedule is None:
            return
        params = [p for name, p in inspect.signature(schedule.__init__).parameters.items()
                  if name not in ("self", "param_name")]
        cls.__signature__ = inspect.Signature(params)


class LRSchedulerMixin(_FixedParamName):
    """Schedule the learning rate (``param_name="lr"``)."""

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, "lr", *args, **kwargs)


class MomentumSchedulerMixin(_FixedParamName):
    """Schedule ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam and its relatives).

    For a ``betas`` optimizer a ``momentum`` entry mirroring ``betas[0]`` is added to every
    param group; the schedule runs on it and each ``step()`` copies it back into ``betas``.
    """

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        groups = param_groups_of(optimizer, type(self).__name__)
        defaults = getattr(optimizer, "defaults", None)
        if defaults is None:  # an optimizer wrapper: look at the optimizer it wraps
            defaults = getattr(getattr(optimizer, "optimizer", None), "defaults", None)
        if not isinstance(defaults, dict):
            defaults = groups[0]
        self.use_betas = "momentum" not in defaults and "betas" in defaults
        if "momentum" not in defaults and not self.use_betas:
            raise ValueError(
                f"{type(self).__name__}: the optimizer has neither 'momentum' nor 'betas' to "
                f"schedule ({type(getattr(optimizer, 'optimizer', optimizer)).__name__}); use "
                "an optimizer with momentum such as SGD or Adam"
            )
        if self.use_betas:
            for group in groups:
                group["momentum"] = group["betas"][0]
        super().__init__(optimizer, "momentum", *args, **kwargs)

    def step(self) -> None:
        super().step()
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group["betas"] = (group["momentum"], group["betas"][1])


class ConstantLR(LRSchedulerMixin, ConstantParamScheduler):
    """``ConstantParamScheduler`` on the learning rate."""


class LinearLR(LRSchedulerMixin, LinearParamScheduler):
    """``LinearParamScheduler`` on the learning rate (the usual warm-up)."""


class StepLR(LRSchedulerMixin, StepParamScheduler):
    """``StepParamScheduler`` on the learning rate."""


class MultiStepLR(LRSchedulerMixin, MultiStepParamScheduler):
    """``MultiStepParamScheduler`` on the learning rate."""


class ExponentialLR(LRSchedulerMixin, ExponentialParamScheduler):
    """``ExponentialParamScheduler`` on the learning rate."""


class CosineAnnealingLR(LRSchedulerMixin, CosineAnnealingParamScheduler):
    """``CosineAnnealingParamScheduler`` on the learning rate."""


class PolyLR(LRSchedulerMixin, PolyParamScheduler):
    """``PolyParamScheduler`` on the learning rate."""


class OneCycleLR(LRSchedulerMixin, OneCycleParamScheduler):
    """``OneCycleParamScheduler`` (the 1cycle policy) on the learning rate."""


class CosineRestartLR(LRSchedulerMixin, CosineRestartParamScheduler):
    """``CosineRestartParamScheduler`` on the learning rate."""


class ConstantMomentum(MomentumSchedulerMixin, ConstantParamScheduler):
    """``ConstantParamScheduler`` on the momentum (or ``betas[0]``)."""


class LinearMomentum(MomentumSchedulerMixin, LinearParamScheduler):
    """``LinearParamScheduler`` on the momentum (or ``betas[0]``)."""


class StepMomentum(MomentumSchedulerMixin, StepParamScheduler):
    """``StepParamScheduler`` on the momentum (or ``betas[0]``)."""


class MultiStepMomentum(MomentumSchedulerMixin, MultiStepParamScheduler):
    """``MultiStepParamScheduler`` on the momentum (or ``betas[0]``)."""


class ExponentialMomentum(MomentumSchedulerMixin, ExponentialParamScheduler):
    """``ExponentialParamScheduler`` on the momentum (or ``betas[0]``)."""


class CosineAnnealingMomentum(MomentumSchedulerMixin, CosineAnnealingParamScheduler):
    """``CosineAnnealingParamScheduler`` on the momentum (or ``betas[0]``)."""


class PolyMomentum(MomentumSchedulerMixin, PolyParamScheduler):
    """``PolyParamScheduler`` on the momentum (or ``betas[0]``)."""


class CosineRestartMomentum(MomentumSchedulerMixin, CosineRestartParamScheduler):
    """``CosineRestartParamScheduler`` on the momentum (or ``betas[0]``)."""
