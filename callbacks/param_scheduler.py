"""Steps the parameter schedulers at the right moments."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.base import Callback


class ParamSchedulerCallback(Callback):
    """Step iteration-based schedulers after every iteration, epoch-based ones after every epoch.

    In iteration-based training an epoch is a pass over the loader, so epoch-based schedulers
    step whenever ``trainer.epoch`` moves.
    """

    priority = "LOW"

    def before_train(self, trainer: Any) -> None:
        schedulers = trainer.param_schedulers
        self._per_iter = [s for s in schedulers if not getattr(s, "by_epoch", True)]
        self._per_epoch = [s for s in schedulers if getattr(s, "by_epoch", True)]
        self._epoch = trainer.epoch

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        for scheduler in self._per_iter:
            scheduler.step()
        if not trainer.by_epoch and trainer.epoch != self._epoch:
            self._step_epoch(trainer)

    def after_train_epoch(self, trainer: Any) -> None:
        if trainer.by_epoch:
            self._step_epoch(trainer)

    def _step_epoch(self, trainer: Any) -> None:
        self._epoch = trainer.epoch
        for scheduler in self._per_epoch:
            scheduler.step()
