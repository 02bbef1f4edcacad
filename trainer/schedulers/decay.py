"""Chainable multiplicative schedules: constant, linear, step, multi-step, exponential, poly.

Each ``_get_value`` is MMEngine's recursive form, evaluated in the same order of floating-point
operations, so values (and compositions with other schedulers) match MMEngine bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.schedulers.base import INF, ParamScheduler


class ConstantParamScheduler(ParamScheduler):
    """Multiply the value by ``factor`` from ``begin`` until the last step before ``end``.

    At ``last_step == end - begin - 1`` the factor is divided out again, so the value is back
    to where it started for the last step of the window.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        factor: multiplier in ``(0, 1]``. Defaults to 1/3.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.3)
        >>> s = ConstantParamScheduler(opt, "lr", factor=0.5, end=3)
        >>> round(opt.param_groups[0]["lr"], 6)
        0.15
    """

    def __init__(self, optimizer: Any, param_name: str, factor: float = 1.0 / 3,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        self.factor = self._real("factor", factor, low=0, high=1, low_open=True)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        self.total_iters = self.end - self.begin - 1

    def _get_value(self) -> list[float]:
        values = [group[self.param_name] for group in self.optimizer.param_groups]
        if self.last_step == 0:
            return [v * self.factor for v in values]
        if self.last_step == self.total_iters:
            return [v * (1.0 / self.factor) for v in values]
        return values


class LinearParamScheduler(ParamScheduler):
    """Move the multiplier linearly from ``start_factor`` to ``end_factor`` over the window.

    The multiplier reaches ``end_factor`` at ``last_step == end - begin - 1``; a warm-up is
    ``LinearParamScheduler(opt, "lr", start_factor=0.001, by_epoch=False, end=500)``.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        start_factor: multiplier at ``begin``, in ``[0, 1]``. Defaults to 1/3. With 0 the
            first value is 0 and the next is computed from the initial value, as a product
            of 0 cannot be scaled back up (MMEngine divides by zero there).
        end_factor: multiplier at the end of the window, in ``[0, 1]``. Defaults to 1.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = LinearParamScheduler(opt, "lr", start_factor=0.5, end=3)
        >>> [round(v, 6) for v in s.get_last_value()]
        [0.5]
    """

    def __init__(self, optimizer: Any, param_name: str, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False) -> None:
        self.start_factor = self._real("start_factor", start_factor, low=0, high=1)
        self.end_factor = self._real("end_factor", end_factor, low=0, high=1)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        self.total_iters = self.end - self.begin - 1

    def _get_value(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_step == 0:
            return [group[self.param_name] * self.start_factor for group in groups]
        delta = self.end_factor - self.start_factor
        previous = self.total_iters * self.start_factor + (self.last_step - 1) * delta
        if previous == 0:  # the last value was 0 (start_factor=0): scale the initial value
            factor = (self.total_iters * self.start_factor + self.last_step * delta) \
                / self.total_iters
            return [base * factor for base in self.base_values]
        ratio = 1. + delta / previous
        return [group[self.param_name] * ratio for group in groups]


class StepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every ``step_size`` steps.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        step_size: period of the decay, in steps (> 0).
        gamma: multiplier (> 0). Defaults to 0.1.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = StepParamScheduler(opt, "lr", step_size=2, gamma=0.5)
        >>> for _ in range(2):
        ...     s.step()
        >>> s.get_last_value()
        [0.5]
    """

    _epoch_scaled = ("step_size",)

    def __init__(self, optimizer: Any, param_name: str, step_size: int, gamma: float = 0.1,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        self.step_size = self._whole("step_size", step_size, minimum=1)
        self.gamma = self._real("gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        values = [group[self.param_name] for group in self.optimizer.param_groups]
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return values
        return [v * self.gamma for v in values]


class MultiStepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` at each milestone (``gamma**k`` if listed k times).

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        milestones: steps (counted from ``begin``) at which to decay.
        gamma: multiplier (> 0). Defaults to 0.1.
        last_step, begin, end, by_epoch, verbose: see ``ParamScheduler`` (MMEngine's order:
            ``last_step`` comes before ``begin`` here).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = MultiStepParamScheduler(opt, "lr", milestones=[1, 3], gamma=0.1)
        >>> s.step()
        >>> [round(v, 6) for v in s.get_last_value()]
        [0.1]
    """

    _epoch_scaled = ("milestones",)

    def __init__(self, optimizer: Any, param_name: str, milestones: Sequence[int],
                 gamma: float = 0.1, last_step: int = -1, begin: int = 0, end: int = INF,
                 by_epoch: bool = True, verbose: bool = False) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(f"{type(self).__name__}: milestones must be a list of steps, "
                            f"got {milestones!r}")
        # A plain {step: count} dict rather than MMEngine's Counter, so the state stays plain.
        self.milestones: dict[int, int] = {}
        for m in milestones:
            m = self._whole("each milestone", m, minimum=0)
            self.milestones[m] = self.milestones.get(m, 0) + 1
        self.gamma = self._real("gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        values = [group[self.param_name] for group in self.optimizer.param_groups]
        if self.last_step not in self.milestones:
            return values
        return [v * self.gamma**self.milestones[self.last_step] for v in values]


class ExponentialParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every step.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        gamma: multiplier (> 0).
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = ExponentialParamScheduler(opt, "lr", gamma=0.5)
        >>> s.step()
        >>> s.get_last_value()
        [0.5]
    """

    def __init__(self, optimizer: Any, param_name: str, gamma: float, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        self.gamma = self._real("gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        values = [group[self.param_name] for group in self.optimizer.param_groups]
        if self.last_step == 0:
            return values
        return [v * self.gamma for v in values]


class PolyParamScheduler(ParamScheduler):
    """Polynomial decay to ``eta_min``, reached at the last step of the window.

    Set by this scheduler alone, the value at step ``t`` is
    ``eta_min + (base - eta_min) * (1 - t / (end - begin - 1)) ** power``.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        eta_min: value at the end of the window. Defaults to 0.
        power: power of the polynomial (> 0). Defaults to 1.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = PolyParamScheduler(opt, "lr", power=1.0, end=3)
        >>> s.step()
        >>> s.get_last_value()
        [0.5]
    """

    def __init__(self, optimizer: Any, param_name: str, eta_min: float = 0, power: float = 1.0,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        self.eta_min = self._real("eta_min", eta_min)
        self.power = self._real("power", power, low=0, low_open=True)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        self.total_iters = self.end - self.begin - 1

    def _get_value(self) -> list[float]:
        values = [group[self.param_name] for group in self.optimizer.param_groups]
        if self.last_step == 0:
            return values
        shrink = (1 - 1 / (self.total_iters - self.last_step + 1))**self.power
        return [(v - self.eta_min) * shrink + self.eta_min for v in values]
