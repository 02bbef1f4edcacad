"""Non-finite training losses, found without a per-iteration host sync.

Each iteration only appends the step's outputs to a list; ``check()`` looks at all of them with
one device sync. The trainer checks every ``log_interval`` iterations and before every checkpoint
save and validation, so a NaN never reaches a checkpoint, rotates good files out or moves a
pointer.
"""

from __future__ import annotations

import math
import operator
import warnings
from itertools import chain
from typing import Any

import torch

MODES = ("raise", "warn", "ignore")
_OUTPUTS = operator.itemgetter(1)  # of a recorded (iteration, outputs) pair


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"on_nonfinite must be one of {list(MODES)}, got {mode!r}")
    return mode


def _as_float(value: Any) -> float:
    return float(value.detach().float().sum()) if isinstance(value, torch.Tensor) else float(value)


def _all_finite(values: list[Any]) -> bool:
    """One device sync for all the tensors among ``values``."""
    if _stack_finite(values):  # scalar tensors only: one stack, without a Python pass
        return True
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not all(math.isfinite(v) for v in values if not isinstance(v, torch.Tensor)):
        return False
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack([t.detach().float().sum() for t in tensors])).all())


def _loss_values(pending: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    """Every recorded ``*loss*`` value, gathered in C when all outputs have the same keys (the
    usual case: a check then costs no Python step per iteration); empty when they differ."""
    outputs = list(map(_OUTPUTS, pending))
    # Equal sizes and every key of the first output in each: the same keys, without a set per
    # output.
    if len(set(map(len, outputs))) != 1:
        return []
    try:
        list(map(operator.itemgetter(*outputs[0]), outputs))
    except (KeyError, TypeError):  # TypeError: no keys at all
        return []
    keys = [key for key in outputs[0] if "loss" in key]
    if not keys:
        return []
    columns = map(operator.itemgetter(*keys), outputs)
    return list(columns) if len(keys) == 1 else list(chain.from_iterable(columns))


def _stack_finite(values: list[Any]) -> bool:
    """Whether ``values``, scalar tensors, are all finite (one device sync); False when they
    cannot be stacked, so that the caller looks at them one by one."""
    try:  # stack, view and tolist, then Python checks floats: not isfinite, all and bool too
        return all(map(math.isfinite, torch.stack(values).reshape(-1).tolist()))
    except (TypeError, RuntimeError):
        return False


def first_nonfinite(pending: list[tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, float]]:
    """The first iteration with a non-finite ``*loss*`` value, with its bad values; -1 if none."""
    values = _loss_values(pending)
    if values and _stack_finite(values):
        return -1, {}
    entries = [(it, key, value) for it, outputs in pending for key, value in outputs.items()
               if "loss" in key and isinstance(value, (torch.Tensor, float, int))]
    if not entries or _all_finite([value for *_, value in entries]):
        return -1, {}
    for it, _, value in entries:  # rare: find the first bad iteration and its bad keys
        if not math.isfinite(_as_float(value)):
            values = {k: _as_float(v) for i, k, v in entries if i == it}
            return it, {k: v for k, v in values.items() if not math.isfinite(v)}
    return -1, {}


class NonFiniteCheck:
    """What ``Trainer(on_nonfinite=...)`` does: ``"raise"`` FloatingPointError, ``"warn"`` once,
    or ``"ignore"``."""

    def __init__(self, mode: str, interval: int) -> None:
        self.mode, self.interval = check_mode(mode), interval
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._warned = False

    def record(self, iteration: int, outputs: Any) -> None:
        """Keep the step's outputs for the next check (a list append per iteration)."""
        if self.mode != "ignore" and isinstance(outputs, dict):
            self._pending.append((iteration, outputs))
            if len(self._pending) >= self.interval:
                self.check()

    def check(self) -> None:
        """Look at every output recorded since the last check."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        iteration, bad = first_nonfinite(pending)
        if iteration < 0 or (self.mode == "warn" and self._warned):
            return
        shown = ", ".join(f"{k}={v}" for k, v in bad.items())
        message = (f"non-finite training loss at iteration {iteration} (trainer.iter, from 0): "
                   f"{shown}. Lower the learning rate, clip gradients "
                   "(optim_wrapper=dict(..., clip_grad=dict(max_norm=1.0))) or check the data")
        if self.mode == "raise":
            raise FloatingPointError(
                f"{message}; nothing was saved after it. on_nonfinite='warn' or 'ignore' "
                "keeps training")
        self._warned = True
        warnings.warn(f"{message}; training goes on (on_nonfinite='warn'; this warning is not "
                      "repeated)", stacklevel=2)
