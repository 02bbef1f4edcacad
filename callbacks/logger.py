"""Prints a progress line every ``interval`` iterations and records every logged scalar."""

from __future__ import annotations

import datetime
import resource
import sys
from typing import Any

import torch

from callbacks.base import Callback
from callbacks.timer import IterTimerCallback
from trainer.logger import RunLog

_TIME_KEYS = ("train/time", "train/data_time")


def peak_memory_mb(device: torch.device) -> int:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / 2**20)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss / 2**20 if sys.platform == "darwin" else rss / 2**10)


class LoggerCallback(Callback):
    """MMEngine's ``LoggerHook``: smoothed losses, lr, times, ETA and memory, every ``interval``.

    Only here are tensors turned into numbers, and only on iterations that log.

    Args:
        interval: iterations between lines; ``None`` uses the Trainer's ``log_interval``.
        window_size: iterations over which losses and times are averaged.
        log_metric_by_epoch: write validation lines as ``Epoch(val)`` (else ``Iter(val)``).
    """

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int | None = None, window_size: int = 10,
                 log_metric_by_epoch: bool = True, priority: int | str | None = None) -> None:
        super().__init__(priority)
        for name, value in (("interval", interval), ("window_size", window_size)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"LoggerCallback {name} must be a positive int, got {value!r}")
        self.interval = interval
        self.window_size = window_size
        self.log_metric_by_epoch = log_metric_by_epoch
        self.log: RunLog | None = None

    def before_run(self, trainer: Any) -> None:
        if self.interval is None:
            self.interval = trainer.log_interval
        if self.log is None:
            self.log = RunLog(trainer.log_dir, trainer.timestamp)

    def after_run(self, trainer: Any) -> None:
        self.log.close()

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self.every_n_train_iters(trainer, self.interval) or self.is_last_train_iter(trainer):
            self._log_train(trainer)

    def _log_train(self, trainer: Any) -> None:
        hub, step = trainer.message_hub, trainer.iter + 1
        values: dict[str, float] = {}
        for key, buffer in hub.scalars.items():
            if key.startswith("train/") and len(buffer):
                is_rate = key.endswith(("lr", "momentum"))
                values[key[6:]] = buffer.current() if is_rate else buffer.mean(self.window_size)
        if trainer.by_epoch:
            length = trainer.train_loop.epoch_length
            done = trainer.state.batch_idx
            where = f"Epoch(train) [{trainer.epoch + 1}][{done:>{len(str(length))}}/{length}]"
        else:
            where = f"Iter(train) [{step:>{len(str(trainer.max_iters))}}/{trainer.max_iters}]"
        eta = datetime.timedelta(seconds=int(IterTimerCallback.eta_seconds(trainer)))
        parts = [where]
        parts += [f"{k}: {values.pop(k):.4e}" for k in ("lr", "momentum") if k in values]
        parts.append(f"eta: {eta}")
        parts += [f"{k[6:]}: {values.pop(k[6:]):.4f}" for k in _TIME_KEYS if k[6:] in values]
        parts.append(f"memory: {peak_memory_mb(trainer.device)}")
        parts += [f"{k}: {v:.4f}" for k, v in values.items()]
        self.log.info("  ".join(parts))
        record = {"mode": "train", "epoch": trainer.epoch, "iter": step}
        record.update({k[6:]: hub.scalars[k].current() for k in hub.scalars
                       if k.startswith("train/") and len(hub.scalars[k])})
        self.log.scalars(record)

    def _log_eval(self, trainer: Any, stage: str, metrics: dict[str, Any] | None) -> None:
        metrics = metrics or {}
        if stage == "val" and trainer.train_loop is not None and self.log_metric_by_epoch \
                and trainer.by_epoch:
            where = f"Epoch(val) [{trainer.epoch}]"
        else:
            where = f"Iter({stage}) [{trainer.iter}]" if stage == "val" else f"Epoch({stage})"
        shown = "  ".join(f"{k}: {_fmt(v)}" for k, v in metrics.items())
        self.log.info(f"{where}  {shown}".rstrip())
        self.log.scalars({"mode": stage, "epoch": trainer.epoch, "iter": trainer.iter,
                          **{f"{stage}/{k}": v for k, v in metrics.items()}})

    def after_val_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        self._log_eval(trainer, "val", metrics)

    def after_test_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        self._log_eval(trainer, "test", metrics)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
