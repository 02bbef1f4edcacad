"""The parameter-scheduler base class: MMEngine's ``_ParamScheduler`` contract, plain state.

A scheduler owns one hyper-parameter (``lr``, ``momentum``, ...) of every param group of an
optimizer. Each ``step()`` advances a global step counter; only while
``begin <= global step < end`` does it advance its own ``last_step`` (counted from ``begin``)
and write new values computed by ``_get_value()``. Most schedules are *chainable*: they
multiply or shift the value the group holds now, so several schedulers on the same group
compose (a warm-up in front of a step decay, say) exactly as in MMEngine.

As in MMEngine, ``optimizer.step`` is wrapped to count its calls, so that a scheduler stepped
before the optimizer (which skips the first value of the schedule) gives MMEngine's warning.
Differences from MMEngine, none of which changes a value: arguments are validated with
exceptions that name the argument (where MMEngine asserts, the exception is also an
``AssertionError``, so code catching MMEngine's errors keeps working), and ``state_dict()``
holds only plain containers (MMEngine stores a ``Counter`` and a bound method) so a checkpoint
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import numbers
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from trainer.dist import is_main_process

INF = int(1e9)  # MMEngine's "no end" marker; ``build_iter_from_epoch`` leaves it unscaled
_ORDER_DOCS = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"


class SchedulerArgumentError(ValueError, AssertionError):
    """A bad argument that MMEngine checks with ``assert``: a ``ValueError`` that ported code
    catching ``AssertionError`` (MMEngine's own tests do) still catches."""


class ParamGroupKeyError(KeyError, ValueError):
    """A param group lacks the key to schedule (or ``initial_<key>`` when resuming by
    ``last_step``): a ``KeyError`` as in MMEngine, and a ``ValueError`` (a bad argument)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def param_groups_of(optimizer: Any, owner: str) -> list[dict]:
    """The param groups of a torch optimizer or of anything exposing ``param_groups``."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(
            f"{owner}: optimizer should be an Optimizer (a torch.optim.Optimizer or an optimizer "
            f"wrapper with a 'param_groups' list of dicts), but got {type(optimizer).__name__}"
        )
    if not groups:
        raise ValueError(f"{owner}: the optimizer has no param groups to schedule")
    return groups


class ParamScheduler:
    """Base class of every scheduler: the step window, the counters and the state.

    Subclasses validate and store their own arguments, then call ``super().__init__``;
    values derived from ``begin``/``end`` are set in ``_prepare``, which runs after the
    common arguments have been checked and before the first ``step()``.

    Args:
        optimizer: a ``torch.optim.Optimizer`` or a wrapper exposing ``param_groups``.
        param_name: the param-group key to schedule, such as ``"lr"`` or ``"momentum"``.
        begin: first step (epoch or iteration, per ``by_epoch``) at which values change.
        end: step at which changes stop (exclusive). Defaults to ``INF``.
        last_step: index of the last step; ``-1`` starts fresh. Any other value resumes
            without a state dict and needs ``initial_<param_name>`` in every param group.
        by_epoch: whether the caller steps this scheduler once per epoch (``True``) or once
            per iteration (``False``).
        verbose: print every value written (rank zero only).
    """

    # Arguments counted in steps that ``build_iter_from_epoch`` multiplies by the epoch length.
    _epoch_scaled: ClassVar[tuple[str, ...]] = ()

    def __init__(self, optimizer: Any, param_name: str, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        owner = type(self).__name__
        groups = param_groups_of(optimizer, owner)
        if not isinstance(param_name, str):
            raise TypeError(f"{owner}: param_name must be a string, got {param_name!r}")
        for i, group in enumerate(groups):
            if param_name not in group:
                raise ParamGroupKeyError(
                    f"{owner}: param_groups[{i}] has no {param_name!r} to schedule; "
                    f"its keys are {sorted(k for k in group if k != 'params')}"
                )
        begin = self._whole("begin", begin, minimum=0)
        end = self._whole("end", end, minimum=1)
        if end <= begin:
            raise ValueError(f"{owner}: end should be larger than begin, but got "
                             f"begin={begin}, end={end}")
        if not isinstance(last_step, int) or isinstance(last_step, bool) or last_step < -1:
            raise SchedulerArgumentError(f"{owner}: last_step must be an int >= -1 (-1 starts "
                                         f"fresh), got {last_step!r}")
        for name, flag in (("by_epoch", by_epoch), ("verbose", verbose)):
            if not isinstance(flag, bool):
                raise TypeError(f"{owner}: {name} must be True or False, got {flag!r}")

        self.optimizer = optimizer
        self.param_name = param_name
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        self.verbose = verbose
        self._prepare(last_step)

        initial = f"initial_{param_name}"
        for i, group in enumerate(groups):
            if last_step == -1:
                # The first scheduler of a group records the value it starts from.
                group.setdefault(initial, group[param_name])
            elif initial not in group:
                raise ParamGroupKeyError(
                    f"{owner}: last_step={last_step} resumes a schedule, but param "
                    f"{initial!r} is not specified in param_groups[{i}] when resuming an "
                    "optimizer; load the optimizer state first or use last_step=-1"
                )
        self.base_values = [group[initial] for group in groups]
        self.last_step = last_step
        count_optimizer_steps(optimizer)
        self._global_step = -1
        self.step()

    # ------------------------------------------------------------------ the schedule
    def _prepare(self, last_step: int) -> None:
        """Set values derived from ``begin``/``end``; runs before the first ``step()``."""

    def _get_value(self) -> list[float]:
        """New values for every param group at ``self.last_step`` (chainable form)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and, inside ``[begin, end)``, write the scheduled values."""
        if self._global_step == 0:
            warn_if_optimizer_not_stepped(self.optimizer)
        self._global_step += 1
        groups = self.optimizer.param_groups
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            for i, (group, value) in enumerate(zip(groups, self._get_value(), strict=False)):
                group[self.param_name] = value
                if self.verbose and is_main_process():
                    print(f"{type(self).__name__}: {self.param_name} of param group {i} "
                          f"set to {value:.4e}")
        self._last_value = [group[self.param_name] for group in groups]

    def get_last_value(self) -> list[float]:
        """The values of every param group after the latest ``step()``."""
        return list(self._last_value)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, as plain containers (MMEngine's keys)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore counters and settings saved by ``state_dict()``."""
        owner = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{owner}.load_state_dict expects the dict returned by "
                            f"state_dict(), got {type(state_dict).__name__}")
        unknown = sorted(set(state_dict) - (set(self.__dict__) - {"optimizer"}))
        if unknown:
            raise ValueError(f"{owner}.load_state_dict: unknown keys {unknown}; was this state "
                             "saved by a different scheduler type?")
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    # ------------------------------------------------------------------ conversion
    @classmethod
    def build_iter_from_epoch(cls, optimizer: Any, *, begin: float = 0, end: float = INF,
                              by_epoch: bool = True, epoch_length: int | None = None,
                              **kwargs: Any) -> ParamScheduler:
        """Build the iteration-based equivalent of an epoch-based configuration.

        ``begin`` and ``end`` (unless ``INF``) become ``int(value * epoch_length)`` and the
        type's own step counts (``step_size``, ``milestones``, ``T_max``, ``total_steps``,
        ``periods``) are multiplied by ``epoch_length``, as in MMEngine. Pass the
        scheduler's own arguments by keyword.
        """
        if by_epoch is not True:
            raise SchedulerArgumentError(
                f"{cls.__name__}.build_iter_from_epoch converts epoch-based arguments only; "
                f"it needs by_epoch=True, got {by_epoch!r}")
        if (not isinstance(epoch_length, int) or isinstance(epoch_length, bool)
                or epoch_length <= 0):
            raise SchedulerArgumentError(
                f"{cls.__name__}.build_iter_from_epoch: epoch_length must be a positive int "
                f"(iterations per epoch), but got {epoch_length!r}")
        for name, value in (("begin", begin), ("end", end)):
            if not _is_real(value):
                raise TypeError(f"{cls.__name__}: {name} must be a number of epochs, "
                                f"got {value!r}")
        for name in cls._epoch_scaled:
            value = kwargs.get(name)
            if isinstance(value, (list, tuple)):
                kwargs[name] = [v * epoch_length if _is_real(v) else v for v in value]
            elif _is_real(value):
                kwargs[name] = value * epoch_length
        return cls(optimizer, begin=int(begin * epoch_length),
                   end=end if end == INF else int(end * epoch_length), by_epoch=False,
                   **kwargs)

    # ------------------------------------------------------------------ helpers
    def _whole(self, name: str, value: Any, minimum: int) -> int:
        """``value`` as an int >= ``minimum``; whole floats such as ``4.0`` are accepted."""
        if _is_real(value) and float(value).is_integer() and value >= minimum:
            return int(value)
        raise ValueError(f"{type(self).__name__}: {name} must be a whole number >= {minimum}, "
                         f"got {value!r}")

    def _real(self, name: str, value: Any, *, low: float | None = None,
              high: float | None = None, low_open: bool = False) -> float:
        """``value`` as a float inside ``[low, high]`` (``(low, high]`` with ``low_open``)."""
        ok = _is_real(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if ok:
            return value
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{type(self).__name__}: {name} must be a number"
                         f"{' ' + bounds if bounds else ''}, got {value!r}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(param_name={self.param_name!r}, begin={self.begin}, "
                f"end={self.end}, by_epoch={self.by_epoch}, last_step={self.last_step})")


_ParamScheduler = ParamScheduler  # MMEngine's name, for code ported by changing the import


class _CountedStep:
    """``optimizer.step`` that counts its calls in ``optimizer._global_step`` (MMEngine's name).

    It holds the optimizer weakly, so the two form no reference cycle and the optimizer's
    state is freed as soon as the optimizer is; it deep-copies and pickles with its optimizer.
    """

    _with_counter = True

    def __init__(self, owner: Any, inner: Callable | None) -> None:
        self._owner = weakref.ref(owner)
        self._inner = inner  # a step already set on the instance, called in turn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = self._owner()
        owner._global_step += 1
        if self._inner is not None:
            return self._inner(*args, **kwargs)
        return type(owner).step(owner, *args, **kwargs)

    def __reduce__(self) -> tuple:
        return _CountedStep, (self._owner(), self._inner)

    def __deepcopy__(self, memo: dict) -> _CountedStep:
        owner = self._owner()
        return _CountedStep(memo.get(id(owner), owner), copy.deepcopy(self._inner, memo))


def count_optimizer_steps(optimizer: Any) -> None:
    """Make ``optimizer.step()`` count its calls in ``optimizer._global_step``, from -1.

    Wrapping twice (several schedulers on one optimizer) keeps the first wrapper; an object
    without a ``step`` method (a bare ``param_groups`` holder) is left alone.
    """
    step = getattr(optimizer, "step", None)
    if not getattr(step, "_with_counter", False):
        if not callable(getattr(type(optimizer), "step", None)):
            return
        optimizer.step = _CountedStep(optimizer, vars(optimizer).get("step"))
    optimizer._global_step = -1


def warn_if_optimizer_not_stepped(optimizer: Any) -> None:
    """MMEngine's (and torch's) warning for a first ``scheduler.step()`` before any
    ``optimizer.step()``, or after ``optimizer.step`` was replaced so calls go uncounted."""
    if not hasattr(optimizer, "_global_step"):  # its steps were never counted
        return
    step: Callable | None = getattr(optimizer, "step", None)
    if not getattr(step, "_with_counter", False):
        warnings.warn("optimizer.step() seems to have been overridden after the parameter "
                      "scheduler was created, so its calls are not counted; make sure to call "
                      f"optimizer.step() before scheduler.step(). See {_ORDER_DOCS}",
                      UserWarning, stacklevel=3)
    elif getattr(optimizer, "_global_step", 0) < 0:
        warnings.warn("Detected call of scheduler.step() before optimizer.step(): call "
                      "optimizer.step() first, otherwise the first value of the schedule is "
                      f"skipped. See {_ORDER_DOCS}", UserWarning, stacklevel=3)
