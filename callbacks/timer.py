"""Data-loading and iteration time, and the ETA derived from them."""

from __future__ import annotations

import time
from typing import Any

from trainer.callbacks.base import Callback


class IterTimerCallback(Callback):
    """Log ``train/data_time`` (waiting for the batch) and ``train/time`` (whole iteration)."""

    priority = "NORMAL"

    def __init__(self, priority: int | str | None = None) -> None:
        super().__init__(priority)
        self._last = time.perf_counter()

    def _restart(self, trainer: Any) -> None:
        self._last = time.perf_counter()

    before_train_epoch = before_val_epoch = before_test_epoch = _restart  # type: ignore[assignment]

    def before_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None) -> None:
        trainer.message_hub.update_scalar("train/data_time", time.perf_counter() - self._last)

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        now = time.perf_counter()
        trainer.message_hub.update_scalar("train/time", now - self._last)
        self._last = now

    def after_val(self, trainer: Any) -> None:
        self._last = time.perf_counter()  # validation time is not training time

    @staticmethod
    def eta_seconds(trainer: Any) -> float:
        """Seconds left, from the mean iteration time so far."""
        buffer = trainer.message_hub.scalars.get("train/time")
        if buffer is None or not len(buffer):
            return 0.0
        return buffer.global_mean() * (trainer.max_iters - trainer.iter - 1)
