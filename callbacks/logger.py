"""Prints a progress line every ``interval`` iterations and records every logged scalar."""

from __future__ import annotations

import datetime
import functools
import math
import re
import resource
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from trainer.callbacks.base import Callback, next_multiple
from trainer.callbacks.timer import IterTimerCallback

from trainer import dist
from trainer.arguments import check_positive_int, is_int, is_number
from trainer.logger import RunLog
from trainer.message_hub import STATISTICS

MEAN_PATTERN = r".*(loss|time|data_time|grad_norm).*"
_RATE = re.compile(r"(^|[./])(lr|momentum|weight_decay)($|/)")  # lr, lr/pg0, gen.lr
_TIME_KEYS = ("time", "data_time")
_TIMESTAMPED = re.compile(r"\d{8}_\d{6}$")
# Linux reports the process's peak RSS for one thread too, without visiting the others:
# RUSAGE_SELF sums every thread's times and took up to 0.5 ms a call once torch's threads ran.
_PEAK_RSS_WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def peak_memory_mb(device: torch.device) -> int:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / 2**20)
    rss = resource.getrusage(_PEAK_RSS_WHO).ru_maxrss
    return int(rss / 2**20 if sys.platform == "darwin" else rss / 2**10)


def check_custom_cfg(custom_cfg: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """MMEngine's ``LogProcessor.custom_cfg``, checked: a list of
    ``dict(data_src=..., method_name="mean"|"current"|"max"|"min",
    window_size=int|"epoch"|"global", log_name=...)``."""
    if custom_cfg is None:
        return []
    if not isinstance(custom_cfg, (list, tuple)):
        raise TypeError(f"custom_cfg must be a list of dicts, got {type(custom_cfg).__name__}")
    checked, names = [], set()
    for cfg in custom_cfg:
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("data_src"), str):
            raise ValueError(f"each custom_cfg entry needs data_src='<scalar name>', got {cfg!r}")
        unknown = set(cfg) - {"data_src", "method_name", "window_size", "log_name"}
        if unknown:
            raise ValueError(f"custom_cfg entry {dict(cfg)!r} has unknown keys {sorted(unknown)}; "
                             "accepted: data_src, method_name, window_size, log_name")
        method = cfg.get("method_name", "mean")
        if method not in STATISTICS:
            raise ValueError(f"custom_cfg method_name must be one of {STATISTICS}, got {method!r}")
        window = cfg.get("window_size")
        if not (window is None or window in ("epoch", "global")
                or (is_int(window) and window > 0)):
            raise ValueError(f"custom_cfg window_size must be a positive int, 'epoch' or "
                             f"'global', got {window!r}")
        name = cfg.get("log_name", cfg["data_src"])
        if name in names:
            raise ValueError(f"custom_cfg logs {name!r} twice: give each entry its own log_name")
        names.add(name)
        checked.append({"data_src": cfg["data_src"], "method_name": method,
                        "window_size": window, "log_name": name})
    return checked


class LoggerCallback(Callback):
    """MMEngine's ``LoggerHook`` with its ``LogProcessor``: smoothed losses, lr, times, ETA and
    memory every ``interval`` iterations, metrics after each evaluation.

    Each log line is also appended as one JSON object to ``<work_dir>/<timestamp>/scalars.jsonl``
    and published on ``trainer.message_hub`` (which ``TensorBoardCallback`` writes out). Tensors
    become numbers only here, and only on iterations that log.

    Args:
        interval: iterations between lines (counted inside the epoch in epoch-based training, as
            MMEngine does); ``None`` uses the Trainer's ``log_interval``.
        window_size: iterations over which values matching ``mean_pattern`` are averaged; other
            values are shown as their latest value.
        log_metric_by_epoch: record validation metrics at step ``epoch`` (else ``iter``) when
            training is epoch-based; this is the step TensorBoard plots them at.
        interval_exp_name: also print the ``Exp name: ...`` line every this many iterations
            (MMEngine prints it every 1000); ``None`` prints it once, when training starts.
        ignore_last: skip the last iterations of an epoch (or of the run) that do not fill an
            interval. MMEngine defaults to ``True``; here ``False``, so short runs log their end.
        custom_cfg: per-key statistics, MMEngine's format:
            ``[dict(data_src="loss", method_name="mean", window_size="global", log_name=...)]``;
            ``method_name`` is ``"mean"``, ``"current"``, ``"max"`` or ``"min"``; ``window_size``
            an int, ``"epoch"`` (since the epoch began) or ``"global"`` (the whole run); without
            ``log_name`` the entry replaces the key's default statistic.
        mean_pattern: a regular expression; matching keys are averaged over ``window_size``.
        num_digits: digits after the point in the printed line.
        scalars_file: append each record to ``scalars.jsonl`` (``Trainer(loggers=[...])``
            without ``"jsonl"`` turns it off).

    Example:
        >>> LoggerCallback(interval=20, custom_cfg=[
        ...     dict(data_src="loss", window_size="global", log_name="loss_global")])
        LoggerCallback(priority='BELOW_NORMAL')
    """

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int | None = None, window_size: int = 10,
                 log_metric_by_epoch: bool = True, interval_exp_name: int | None = None,
                 ignore_last: bool = False,
                 custom_cfg: Sequence[Mapping[str, Any]] | None = None,
                 mean_pattern: str = MEAN_PATTERN, num_digits: int = 4,
                 scalars_file: bool = True, priority: int | str | None = None) -> None:
        super().__init__(priority)
        for name, value in (("interval", interval), ("window_size", window_size),
                            ("interval_exp_name", interval_exp_name),
                            ("num_digits", num_digits)):
            check_positive_int(f"LoggerCallback {name}", value, allow_none=True)
        self.interval = interval
        self.window_size = window_size
        self.log_metric_by_epoch = log_metric_by_epoch
        self.interval_exp_name = interval_exp_name
        self.ignore_last = ignore_last
        self.custom_cfg = check_custom_cfg(custom_cfg)
        try:
            self.mean_pattern = re.compile(mean_pattern)
        except (re.error, TypeError) as err:
            raise ValueError(f"mean_pattern must be a regular expression, got "
                             f"{mean_pattern!r}: {err}") from None
        self.num_digits = num_digits
        self.scalars_file = scalars_file
        self.log: RunLog | None = None
        self._interval = interval or 1
        self._training, self._by_epoch, self._last = False, True, 0
        self._smoothed: dict[str, bool] = {}  # by name: matches mean_pattern

    # Hooks.
    def before_run(self, trainer: Any) -> None:
        self._interval = self.interval or trainer.log_interval
        if self.log is None or self.log.log_dir != trainer.log_dir:
            self.log = RunLog(trainer.log_dir, trainer.timestamp)

    def after_run(self, trainer: Any) -> None:
        self.log.close()

    def before_train(self, trainer: Any) -> None:
        self._training = True
        self._by_epoch = trainer.by_epoch
        self._last = trainer.train_loop.epoch_length if trainer.by_epoch else trainer.max_iters
        self.log.info(header(trainer))

    def after_train(self, trainer: Any) -> None:
        self._training = False

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        # batch_idx counts inside the epoch (epoch-based) or is the global iteration; this runs
        # every iteration, so it only compares ints it prepared in before_train.
        done = batch_idx + 1
        last = done == self._last
        if self.interval_exp_name and (trainer.state.iter + 1) % self.interval_exp_name == 0:
            self.log.info(f"Exp name: {experiment_name(trainer)}")
        if done % self._interval == 0 or (last and not self.ignore_last):
            self._log_train(trainer, batch_idx)

    def skippable_train_iters(self, trainer: Any, batch_idx: int) -> int:
        """Iterations after ``batch_idx`` before the next line (or ``Exp name`` line) is due."""
        done = batch_idx + 1
        due = next_multiple(self._interval, done + 1)
        if not self.ignore_last and self._last is not None and done < self._last:
            due = min(due, self._last)
        if self.interval_exp_name:  # counted in global iterations
            step = trainer.state.iter + 1
            due = min(due, done + next_multiple(self.interval_exp_name, step + 1) - step)
        return due - done - 1

    def after_val_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        self._log_eval(trainer, "val", metrics)

    def after_test_epoch(self, trainer: Any, metrics: dict[str, Any] | None = None) -> None:
        self._log_eval(trainer, "test", metrics)

    # What is logged.
    def collect(self, trainer: Any, mode: str, batch_idx: int = 0) -> dict[str, float]:
        """The values of ``<mode>/*`` scalars, smoothed as configured, keyed without prefix."""
        scalars = trainer.message_hub.scalars
        prefix = f"{mode}/"
        values: dict[str, float] = {}
        smoothed = self._smoothed
        for key, buffer in scalars.items():
            if key.startswith(prefix) and len(buffer):
                name = key[len(prefix):]
                smooth = smoothed.get(name)
                if smooth is None:
                    smooth = smoothed[name] = bool(self.mean_pattern.search(name))
                values[name] = buffer.mean(self.window_size) if smooth else buffer.current()
        for cfg in self.custom_cfg:
            buffer = scalars.get(prefix + cfg["data_src"])
            if buffer is None or not len(buffer):
                continue
            window = cfg["window_size"] or self.window_size
            if window == "epoch":  # the iterations of the current epoch / pass so far
                window = batch_idx + 1 if trainer.by_epoch else (
                    trainer.state.batch_idx or trainer.train_loop.epoch_length)
            values[cfg["log_name"]] = buffer.statistics(cfg["method_name"], window)
        return values

    def _log_train(self, trainer: Any, batch_idx: int) -> None:
        # Losses and times are averaged over ranks here, on logging iterations only.
        values = dist.mean_over_ranks(self.collect(trainer, "train", batch_idx), trainer.device)
        step, digits = trainer.iter + 1, self.num_digits
        if trainer.by_epoch:
            length = trainer.train_loop.epoch_length
            where = (f"Epoch(train) [{trainer.epoch + 1}]"
                     f"[{batch_idx + 1:>{len(str(length))}}/{length}]")
        else:
            where = f"Iter(train) [{step:>{len(str(trainer.max_iters))}}/{trainer.max_iters}]"
        eta = datetime.timedelta(seconds=int(IterTimerCallback.eta_seconds(trainer)))
        memory = peak_memory_mb(trainer.device)
        rates, times, rest = line_groups(tuple(values))
        self.log.info("  ".join([
            where, *[f"{k}: {values[k]:.{digits}e}" for k in rates], f"eta: {eta}",
            *[f"{k}: {values[k]:.{digits}f}" for k in times], f"memory: {memory}",
            *[f"{k}: {_fmt(values[k], digits)}" for k in rest]]))
        values["memory"] = memory
        # epoch: the line's 1-based epoch; iteration-based: the passes over the loader done.
        epoch = trainer.epoch + 1 if trainer.by_epoch else trainer.epoch
        if self.scalars_file:
            self.log.scalars({"mode": "train", "epoch": epoch, "iter": step, **values})
        trainer.message_hub.publish("train", values, step)

    def _log_eval(self, trainer: Any, stage: str, metrics: dict[str, Any] | None) -> None:
        metrics = metrics or {}
        training = self._training
        if stage == "val" and training and trainer.by_epoch:
            where = f"Epoch(val) [{trainer.epoch}]"
        elif stage == "val" and training:
            where = f"Iter(val) [{trainer.iter}]"
        else:
            where = f"Epoch({stage})"
        shown = "  ".join(f"{k}: {_fmt(v, self.num_digits)}" for k, v in metrics.items())
        self.log.info(f"{where}  {shown}".rstrip())
        if self.scalars_file:
            self.log.scalars({"mode": stage, "epoch": trainer.epoch, "iter": trainer.iter,
                              **{f"{stage}/{k}": v for k, v in metrics.items()}})
        by_epoch = self.log_metric_by_epoch and trainer.by_epoch and training
        scalars = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        trainer.message_hub.publish(stage, scalars, trainer.epoch if by_epoch else trainer.iter)


@functools.lru_cache(maxsize=64)
def line_groups(names: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """A train line's names in its three places: rates (lr, momentum) before the ETA, times
    after it, the rest after the memory; the same names every line, so sorted once."""
    rates = [k for k in names if _RATE.search(k)]
    times = [k for k in _TIME_KEYS if k in names]
    return rates, times, [k for k in names if k not in _TIME_KEYS and k not in rates]


def experiment_name(trainer: Any) -> str:
    """The last folder of ``work_dir`` and the run's timestamp, e.g. ``net_20240101_120000``;
    a folder already named with a timestamp (``digits_20240101_115959``) is not stamped twice."""
    folder = trainer.work_dir.rstrip("/").rsplit("/", 1)[-1]
    if _TIMESTAMPED.search(folder):
        return folder
    return f"{folder}_{trainer.timestamp}"


def header(trainer: Any) -> str:
    """The one line a run starts with: its name, its length, and where its files go."""
    length = (f"{trainer.max_epochs} epochs of {trainer.train_loop.epoch_length} iterations"
              if trainer.by_epoch else f"{trainer.max_iters} iterations")
    start = f", resumed at iteration {trainer.iter}" if trainer.iter else ""
    return (f"Exp name: {experiment_name(trainer)}  ({length}{start}; checkpoints in "
            f"{trainer.work_dir}, logs in {trainer.log_dir})")


def _is_number(value: Any) -> bool:
    return is_number(value) or (
        isinstance(value, torch.Tensor) and value.numel() == 1)


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)
