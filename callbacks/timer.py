"""Data-loading and iteration time, the ETA derived from them, and throughput."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import torch
from trainer.callbacks.base import Callback

from trainer import throughput
from trainer.arguments import check_positive_int, is_number

TIMES = ("train/data_time", "train/time")  # recorded every iteration
RATES = ("iters_per_s", "samples_per_s", "tokens_per_s", "flops", "mfu")


class Mark(NamedTuple):
    """Where the last throughput figure was taken."""

    iters: int  # iterations done
    time: float  # perf_counter, moved on by the validations since
    samples: int | None  # samples this process had trained on, when the loader says


class IterTimerCallback(Callback):
    """Log ``train/data_time`` (waiting for the batch) and ``train/time`` (whole iteration), and
    throughput every ``interval`` iterations.

    Throughput covers the iterations since the previous figure, less validation time; the first
    interval after a start or resume (compilation, warm-up) only sets the mark, so figures appear
    from the second interval on. ``train/iters_per_s`` and ``train/samples_per_s`` (over all processes: the
    samples of those iterations, a short last batch of an epoch as it is, when the loader
    batches a sampler with ``len``; else the logging iteration's batch size times the
    iterations) always; ``train/tokens_per_s`` (the logging iteration's count times the
    iterations) when the model defines ``count_tokens(data) -> int``; ``train/flops`` (per iteration and
    process, counted once on the first iteration with ``torch.utils.flop_counter``'s formulas:
    matrix products, convolutions and attention, forward and backward) and ``train/mfu``
    (achieved over peak FLOP/s per device) when a peak is known or given. Work beyond the two
    times, and a CUDA sync, happen on those iterations only.

    Args:
        interval: iterations between throughput figures, counted as the logger counts them;
            ``None`` uses the logger's interval, so each figure lands on a log line.
        peak_flops: peak FLOP/s of one device, for MFU; ``None`` uses the known peak of the CUDA
            device (none on CPU).
        count_flops: count the FLOPs of the first training iteration.

    Example:
        >>> IterTimerCallback(peak_flops=312e12)  # an A100 in bf16
        IterTimerCallback(priority='NORMAL')
    """

    priority = "NORMAL"

    def __init__(self, interval: int | None = None, peak_flops: float | None = None,
                 count_flops: bool = True, priority: int | str | None = None) -> None:
        super().__init__(priority)
        check_positive_int("IterTimerCallback interval", interval, allow_none=True)
        if peak_flops is not None and not (is_number(peak_flops) and peak_flops > 0):
            raise ValueError(f"peak_flops must be a positive number of FLOP/s (e.g. 312e12), got "
                             f"{peak_flops!r}")
        self.interval = interval
        self.peak_flops = peak_flops
        self.count_flops = count_flops
        self.flops: int | None = None  # per training iteration and process, once counted
        self._last = self._started = time.perf_counter()
        self._interval = interval or 1
        self._counter: throughput.FlopCount | None = None
        self._count_next = False  # open a FLOP count in the next before_train_iter
        self._mark: Mark | None = None
        self._val_start = 0.0

    def _restart(self, trainer: Any) -> None:
        self._last = time.perf_counter()

    before_train_epoch = before_val_epoch = before_test_epoch = _restart  # type: ignore[assignment]

    def before_train(self, trainer: Any) -> None:
        from trainer.callbacks.logger import LoggerCallback  # it imports this module

        loggers = trainer.callbacks.get(LoggerCallback)
        self._interval = self.interval or (loggers and loggers[0].interval) or trainer.log_interval
        self._mark = None
        for key in RATES:  # a resumed hub holds the last run's figures: not this run's
            trainer.message_hub.scalars.pop(f"train/{key}", None)
        self._count_next = self.count_flops and self.flops is None

    def before_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self._count_next:  # the first iteration, from its batch on: not the loading
            self._count_next = False
            self._counter = throughput.FlopCount()
        self._started = time.perf_counter()

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        now, last = time.perf_counter(), self._last
        trainer.message_hub.record_row(TIMES, (self._started - last, now - last))
        self._last = now
        if self._counter is not None:
            self._stop_counting()
        if (batch_idx + 1) % self._interval == 0:
            self._log_throughput(trainer, data_batch)

    def before_val(self, trainer: Any) -> None:
        self._val_start = time.perf_counter()

    def after_val(self, trainer: Any) -> None:
        self._last = time.perf_counter()  # validation time is not training time
        if self._mark is not None:
            self._mark = self._mark._replace(time=self._mark.time + self._last - self._val_start)

    def after_train(self, trainer: Any) -> None:
        if self._counter is not None:  # training ended before its first iteration did
            self._stop_counting()

    def _stop_counting(self) -> None:
        self.flops = self._counter.close()
        self._counter = None

    def _log_throughput(self, trainer: Any, data_batch: Any) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)  # host time equals device time from here
        now, done = time.perf_counter(), trainer.state.iter + 1
        samples_seen = getattr(trainer.train_loop, "samples_seen", None)  # a user's loop may lack it
        samples = samples_seen() if samples_seen is not None else None
        mark, self._mark = self._mark, Mark(done, now, samples)
        if mark is None or done <= mark.iters:
            return
        iters_per_s = (done - mark.iters) / (now - mark.time)
        rates = {"iters_per_s": iters_per_s}
        if mark.samples is not None and samples is not None:
            samples_per_s = (samples - mark.samples) / (now - mark.time)
        else:  # batch sizes unknown in advance: this batch's, for each iteration
            size = throughput.batch_size(data_batch)
            samples_per_s = None if size is None else size * iters_per_s
        if samples_per_s is not None:
            rates["samples_per_s"] = samples_per_s * trainer.world_size
        count_tokens = getattr(trainer.model, "count_tokens", None)
        if callable(count_tokens):
            rates["tokens_per_s"] = int(count_tokens(data_batch)) * iters_per_s * trainer.world_size
        if self.flops:
            rates["flops"] = float(self.flops)
            peak = self.peak_flops or throughput.peak_flops(trainer.device, trainer.precision)
            if peak:
                rates["mfu"] = self.flops * iters_per_s / peak
        trainer.message_hub.update_scalars(rates, prefix="train/")

    @staticmethod
    def eta_seconds(trainer: Any) -> float:
        """Seconds left, from the mean iteration time so far."""
        buffer = trainer.message_hub.scalars.get("train/time")
        if buffer is None or not len(buffer):
            return 0.0
        return buffer.global_mean() * (trainer.max_iters - trainer.iter - 1)
