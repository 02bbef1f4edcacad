"""Steps the parameter schedulers at the right moments (MMEngine's ``ParamSchedulerHook``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from trainer.callbacks.base import Callback


def iter_schedulers(param_schedulers: Any) -> Iterator[Any]:
    """Every scheduler of ``trainer.param_schedulers``: a list, or a dict of lists (one per
    optimizer of an ``OptimWrapperDict``, as MMEngine allows), or ``None``."""
    if param_schedulers is None:
        return
    groups = (param_schedulers.values() if isinstance(param_schedulers, dict)
              else [param_schedulers])
    for group in groups:
        if not isinstance(group, (list, tuple)):
            raise TypeError("trainer.param_schedulers should be a list of schedulers or a dict "
                            f"of such lists, but got {type(param_schedulers).__name__}")
        yield from group


class ParamSchedulerCallback(Callback):
    """Step iteration-based schedulers after every iteration, epoch-based ones after every epoch,
    and metric-driven ones (``need_val_args``, the ``ReduceOnPlateau*`` schedulers) after every
    validation with its metrics.

    In iteration-based training an epoch is a pass over the loader, so epoch-based schedulers
    step whenever a pass ends. Each hook reads ``trainer.param_schedulers`` when it runs, so a
    subclass may override any one of them, and schedulers may be replaced during a run. Without
    any, its ``after_train_iter`` runs on the first iteration of each epoch only (of the run, in
    iteration-based training), so schedulers added later take effect from the next start.
    """

    priority = "LOW"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if not runner.param_schedulers:  # nothing to step: the common case costs one test
            return
        for scheduler in iter_schedulers(runner.param_schedulers):
            if not scheduler.by_epoch:
                scheduler.step()
        if not runner.by_epoch and self._pass_ended(runner):
            self._step_epoch_based(runner)

    def skippable_train_iters(self, runner: Any, batch_idx: int) -> int:
        """Every following iteration while there is no scheduler, none while there is one."""
        return 0 if runner.param_schedulers else sys.maxsize

    def after_train_epoch(self, runner: Any) -> None:
        if runner.by_epoch:
            self._step_epoch_based(runner)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        if metrics is None:
            return
        for scheduler in iter_schedulers(runner.param_schedulers):
            if scheduler.by_epoch and getattr(scheduler, "need_val_args", False):
                scheduler.step(metrics)

    @staticmethod
    def _pass_ended(runner: Any) -> bool:
        """In iteration-based training, whether a pass over the loader ended with this batch
        (a loader without ``len`` is only known to have ended when the next batch starts)."""
        state = runner.state
        if runner.train_loop.epoch_length is not None:
            return state.batch_idx == 0
        return state.batch_idx == 1 and state.epoch > 0

    @staticmethod
    def _step_epoch_based(runner: Any) -> None:
        for scheduler in iter_schedulers(runner.param_schedulers):
            if scheduler.by_epoch:
                scheduler.step()
