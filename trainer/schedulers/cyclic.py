"""Cosine-shaped schedules: cosine annealing, cosine with restarts, and 1cycle.

Formulas and operation order are MMEngine's, so values match it bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from trainer.schedulers.base import INF, ParamScheduler, SchedulerArgumentError


class CosineAnnealingParamScheduler(ParamScheduler):
    """Cosine annealing from the initial value to ``eta_min`` over ``T_max`` steps (SGDR).

    Set by this scheduler alone, the value at step ``t`` is
    ``eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``; the recursive form used
    here lets it compose with other schedulers.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        T_max: steps of the half cosine period; defaults to ``end - begin``.
        eta_min: minimum value. Defaults to 0 when ``eta_min_ratio`` is not given.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.
        eta_min_ratio: minimum as a fraction of each group's initial value; give either this
            or ``eta_min``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = CosineAnnealingParamScheduler(opt, "lr", T_max=2)
        >>> s.step()
        >>> [round(v, 6) for v in s.get_last_value()]
        [0.5]
    """

    _epoch_scaled = ("T_max",)

    def __init__(self, optimizer: Any, param_name: str, T_max: int | None = None,
                 eta_min: float | None = None, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False,
                 eta_min_ratio: float | None = None) -> None:
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.
        self.eta_min, self.eta_min_ratio = _one_minimum(self, eta_min, eta_min_ratio)
        self.T_max = None if T_max is None else self._whole("T_max", T_max, minimum=1)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        if self.T_max is None:
            self.T_max = self.end - self.begin

    def _eta_min(self, base_value: float) -> float:
        return self.eta_min if self.eta_min_ratio is None else base_value * self.eta_min_ratio

    def _get_value(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, period = self.last_step, self.T_max
        if t == 0:
            return [group[self.param_name] for group in groups]
        if (t - 1 - period) % (2 * period) == 0:
            return [group[self.param_name]
                    + (base - self._eta_min(base)) * (1 - math.cos(math.pi / period)) / 2
                    for base, group in zip(self.base_values, groups, strict=False)]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (group[self.param_name] - self._eta_min(base)) + self._eta_min(base)
                for base, group in zip(self.base_values, groups, strict=False)]


class CosineRestartParamScheduler(ParamScheduler):
    """Cosine annealing restarted after each period, from ``base * restart_weights[i]``.

    Within period ``i`` at step ``s`` of it, set by this scheduler alone, the value is
    ``eta_min + (base * w_i - eta_min) * (1 + cos(pi * s / periods[i])) / 2``. After the last
    period the value is left alone.

    Args:
        optimizer: optimizer or wrapper.
        param_name: param-group key to schedule.
        periods: length of each cosine cycle, in steps.
        restart_weights: weight of the initial value at each restart, one per period.
            Defaults to ``(1,)``.
        eta_min: minimum value; give exactly one of ``eta_min`` and ``eta_min_ratio``.
        eta_min_ratio: minimum as a fraction of each group's initial value.
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> s = CosineRestartParamScheduler(opt, "lr", periods=[2, 2],
        ...                                 restart_weights=[1, 0.5], eta_min=0)
        >>> for _ in range(2):
        ...     s.step()
        >>> s.get_last_value()
        [0.5]
    """

    _epoch_scaled = ("periods",)

    def __init__(self, optimizer: Any, param_name: str, periods: Sequence[int],
                 restart_weights: Sequence[float] = (1,), eta_min: float | None = None,
                 eta_min_ratio: float | None = None, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        owner = type(self).__name__
        for name, seq in (("periods", periods), ("restart_weights", restart_weights)):
            if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or not seq:
                raise TypeError(f"{owner}: {name} must be a non-empty list, got {seq!r}")
        if len(periods) != len(restart_weights):
            raise SchedulerArgumentError(
                f"{owner}: periods and restart_weights must have the same length, got "
                f"{len(periods)} periods and {len(restart_weights)} weights")
        if eta_min is None and eta_min_ratio is None:
            raise SchedulerArgumentError(
                f"{owner}: give exactly one of eta_min (the minimum value) or eta_min_ratio "
                "(the minimum as a fraction of the initial value)")
        self.eta_min, self.eta_min_ratio = _one_minimum(self, eta_min, eta_min_ratio)
        self.periods = [self._whole("each period", p, minimum=1) for p in periods]
        self.restart_weights = [self._real("each restart weight", w, low=0)
                                for w in restart_weights]
        self.cumulative_periods = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[float]:
        groups = self.optimizer.param_groups
        idx = self.get_position_from_periods(self.last_step, self.cumulative_periods)
        if idx is None:  # past the last period
            return [group[self.param_name] for group in groups]
        period = self.periods[idx]
        step = self.last_step - (0 if idx == 0 else self.cumulative_periods[idx - 1])
        values = []
        for base, group in zip(self.base_values, groups, strict=False):
            eta_min = self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio
            if step == 0:
                values.append(base * self.restart_weights[idx])
            else:
                values.append((1 + math.cos(math.pi * step / period))
                              / (1 + math.cos(math.pi * (step - 1) / period))
                              * (group[self.param_name] - eta_min) + eta_min)
        return values

    @staticmethod
    def get_position_from_periods(iteration: int, cumulative_periods: list[int]) -> int | None:
        """Index of the period holding ``iteration``, or ``None`` past the last one."""
        for i, period_end in enumerate(cumulative_periods):
            if iteration < period_end:
                return i
        return None


class OneCycleParamScheduler(ParamScheduler):
    """The 1cycle policy: up from ``eta_max / div_factor`` to ``eta_max``, then down.

    Not chainable: it sets ``initial_lr``, ``max_lr`` and ``min_lr`` on every param group and
    computes each value from them. Learning rate only (``param_name="lr"``), as in MMEngine.

    Args:
        optimizer: optimizer or wrapper.
        param_name: must be ``"lr"``.
        eta_max: peak value (> 0), or one per param group.
        total_steps: length of the cycle; defaults to ``end - begin``.
        pct_start: fraction of the cycle spent going up, in ``[0, 1]``. Defaults to 0.3.
        anneal_strategy: ``"cos"`` or ``"linear"``. Defaults to ``"cos"``.
        div_factor: initial value is ``eta_max / div_factor``. Defaults to 25.
        final_div_factor: minimum is ``initial / final_div_factor``. Defaults to 1e4.
        three_phase: go back down to the initial value symmetrically, then to the minimum in
            a third phase (the original paper), instead of two phases (fastai).
        begin, end, last_step, by_epoch, verbose: see ``ParamScheduler``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> s = OneCycleParamScheduler(opt, "lr", eta_max=1.0, total_steps=10)
        >>> [round(v, 6) for v in s.get_last_value()]
        [0.04]
    """

    _epoch_scaled = ("total_steps",)

    def __init__(self, optimizer: Any, param_name: str, eta_max: float | Sequence[float] = 0,
                 total_steps: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25.,
                 final_div_factor: float = 1e4, three_phase: bool = False, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        owner = type(self).__name__
        if param_name != "lr":
            raise ValueError(f"{owner} schedules the learning rate only (param_name='lr'), "
                             f"got param_name={param_name!r}")
        maxima = eta_max if isinstance(eta_max, (list, tuple)) else [eta_max]
        for value in maxima:
            self._real("eta_max (the peak learning rate)", value, low=0, low_open=True)
        self.eta_max = list(eta_max) if isinstance(eta_max, (list, tuple)) else eta_max
        self.total_steps = (None if total_steps is None
                            else self._whole("total_steps", total_steps, minimum=1))
        self.pct_start = self._real("pct_start", pct_start, low=0, high=1)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = self._real("div_factor", div_factor, low=0, low_open=True)
        self.final_div_factor = self._real("final_div_factor", final_div_factor, low=0,
                                           low_open=True)
        if not isinstance(three_phase, bool):
            raise TypeError(f"{owner}: three_phase must be True or False, got {three_phase!r}")
        self.three_phase = three_phase
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _prepare(self, last_step: int) -> None:
        if self.total_steps is None:
            self.total_steps = self.end - self.begin
        up_end = float(self.pct_start * self.total_steps) - 1
        phases = [(up_end, "initial", "max")]
        if self.three_phase:
            phases.append((float(2 * self.pct_start * self.total_steps) - 2, "max", "initial"))
            phases.append((self.total_steps - 1, "initial", "min"))
        else:
            phases.append((self.total_steps - 1, "max", "min"))
        self._schedule_phases = [
            {"end_step": end_step, "start_lr": f"{start}_lr", "end_lr": f"{stop}_lr"}
            for end_step, start, stop in phases
        ]
        groups = self.optimizer.param_groups
        maxima = self.eta_max if isinstance(self.eta_max, list) else [self.eta_max] * len(groups)
        if len(maxima) != len(groups):
            raise ValueError(f"{type(self).__name__}: eta_max has {len(maxima)} values but the "
                             f"optimizer has {len(groups)} param groups")
        if last_step == -1:
            for group, peak in zip(groups, maxima, strict=True):
                group["initial_lr"] = peak / self.div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / self.final_div_factor

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _get_value(self) -> list[float]:
        step = self.last_step
        if step > self.total_steps:
            raise ValueError(f"{type(self).__name__} was stepped {step + 1} times, past its "
                             f"total_steps={self.total_steps}; raise total_steps or end")
        values = []
        for group in self.optimizer.param_groups:
            start_step = 0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    values.append(self._anneal(group[phase["start_lr"]],
                                               group[phase["end_lr"]], pct))
                    break
                start_step = end_step
        return values


def _one_minimum(owner: ParamScheduler, eta_min: Any, eta_min_ratio: Any
                 ) -> tuple[float | None, float | None]:
    """Check that exactly one of ``eta_min`` and ``eta_min_ratio`` is given, and is a number."""
    if eta_min is not None and eta_min_ratio is not None:
        raise SchedulerArgumentError(
            f"{type(owner).__name__}: give either eta_min or eta_min_ratio, not both (got "
            f"eta_min={eta_min!r}, eta_min_ratio={eta_min_ratio!r})")
    if eta_min is not None:
        return owner._real("eta_min", eta_min), None
    return None, owner._real("eta_min_ratio", eta_min_ratio, low=0)
