"""The learning-rate and momentum schedulers, under MMEngine's class names, built from one table.

Each is its ``*ParamScheduler`` with ``param_name`` fixed, so it takes the same arguments
minus ``param_name``: ``MultiStepLR(optimizer, milestones=[6, 8], gamma=0.1, by_epoch=True)``.
``SCHEDULERS`` maps every name (``StepParamScheduler``, ``StepLR``, ``StepMomentum``, ...) to
its class; ``trainer.schedulers`` exports them all and config ``type`` names resolve through it.
Momentum schedulers drive ``momentum`` for SGD-style optimizers and ``betas[0]`` for Adam-style
ones, as MMEngine does.

Example:
    >>> import torch
    >>> opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    >>> lr = SCHEDULERS["StepLR"](opt, step_size=1, gamma=0.5)
    >>> mom = SCHEDULERS["StepMomentum"](opt, step_size=1, gamma=0.5)
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
from trainer.schedulers.plateau import ReduceOnPlateauParamScheduler


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
                f"{type(self).__name__}: optimizer must support momentum when using momentum "
                "scheduler, but it has neither 'momentum' nor 'betas' "
                f"({type(getattr(optimizer, 'optimizer', optimizer)).__name__}); use an "
                "optimizer with momentum such as SGD or Adam"
            )
        if self.use_betas:
            for group in groups:
                group["momentum"] = group["betas"][0]
        super().__init__(optimizer, "momentum", *args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> None:
        super().step(*args, **kwargs)
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group["betas"] = (group["momentum"], group["betas"][1])


# The one table of schedulers: each ``*ParamScheduler`` and the parameters it has variants for.
# ``SCHEDULERS`` (what config names resolve to), the builder and the package's exports read it.
_VARIANTS: dict[type[ParamScheduler], tuple[str, ...]] = {
    ConstantParamScheduler: ("LR", "Momentum"),
    LinearParamScheduler: ("LR", "Momentum"),
    StepParamScheduler: ("LR", "Momentum"),
    MultiStepParamScheduler: ("LR", "Momentum"),
    ExponentialParamScheduler: ("LR", "Momentum"),
    CosineAnnealingParamScheduler: ("LR", "Momentum"),
    PolyParamScheduler: ("LR", "Momentum"),
    OneCycleParamScheduler: ("LR",),
    CosineRestartParamScheduler: ("LR", "Momentum"),
    ReduceOnPlateauParamScheduler: ("LR", "Momentum"),
}
_MIXINS = {"LR": (LRSchedulerMixin, "the learning rate"),
           "Momentum": (MomentumSchedulerMixin, "the momentum (or ``betas[0]``)")}


def _variant(schedule: type[ParamScheduler], kind: str) -> type[ParamScheduler]:
    """``schedule`` with ``param_name`` fixed: ``StepParamScheduler`` -> ``StepLR``."""
    mixin, what = _MIXINS[kind]
    name = schedule.__name__.replace("ParamScheduler", kind)
    doc = f"``{schedule.__name__}`` on {what}; the same arguments without ``param_name``."
    return type(name, (mixin, schedule), {"__doc__": doc, "__module__": __name__,
                                          "__qualname__": name})


SCHEDULERS: dict[str, type[ParamScheduler]] = {
    **{schedule.__name__: schedule for schedule in _VARIANTS},
    **{variant.__name__: variant for variant in (
        _variant(schedule, kind) for schedule, kinds in _VARIANTS.items() for kind in kinds)},
}
