"""``torch.profiler`` traces of chosen training iterations, and CUDA memory snapshots."""

from __future__ import annotations

import os
import posixpath
import socket
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import fsspec
import torch
from trainer.callbacks.base import Callback

from trainer.arguments import check_non_negative_int, check_positive_int

ACTIVITIES = ("cpu", "cuda")


def _count(name: str, value: Any, minimum: int) -> int:
    check = check_positive_int if minimum else check_non_negative_int
    return check(f"ProfilerCallback {name}", value)


class ProfilerCallback(Callback):
    """Profile training iterations with ``torch.profiler`` on a wait/warm-up/active schedule.

    After ``skip_first`` iterations, each of ``repeat`` cycles waits ``wait`` iterations, warms
    up for ``warmup`` and records ``active``; each cycle's trace (``ProfilerStep#n`` spans, one per
    iteration, with the operators inside) is written as
    ``<out_dir>/<host>_<pid>.<step>.pt.trace.json``, which TensorBoard's profiler plugin
    (``tensorboard --logdir <work_dir>``), ``chrome://tracing`` and Perfetto open. Only rank zero
    profiles. Not a default callback, so a run without it pays nothing.

    On CUDA, ``memory_snapshot_iter=n`` records the allocator's history from the start of training
    and dumps it after iteration ``n`` (0-based) to ``<out_dir>/memory_snapshot_iter_<n>.pickle``,
    for https://pytorch.org/memory_viz.

    Args:
        wait, warmup, active: iterations per cycle (epochs with ``by_epoch=True``).
        repeat: cycles; 0 repeats until training ends.
        skip_first: iterations (epochs) before the first cycle.
        by_epoch: count the schedule in epochs of the epoch-based loop.
        activities: ``"cpu"`` and/or ``"cuda"``; CUDA is left out where the run is not on CUDA.
        record_shapes, profile_memory, with_stack, with_flops: ``torch.profiler.profile``'s.
        out_dir: where traces go (a path or fsspec URL); default ``<log_dir>/profiler``.
        json_trace_path: write the (last) trace to this file instead.
        summary_rows: when above 0, log a table of the operators taking the most time.
        sort_by: the ``key_averages().table`` column that orders it.
        memory_snapshot_iter: the iteration after which to dump a CUDA memory snapshot.
        memory_snapshot_entries: allocation events the snapshot keeps.

    Example:
        >>> ProfilerCallback(wait=1, warmup=1, active=2, record_shapes=True)
        ProfilerCallback(priority='VERY_LOW')
    """

    priority = "VERY_LOW"

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3, repeat: int = 1,
                 skip_first: int = 0, by_epoch: bool = False,
                 activities: tuple[str, ...] | list[str] = ACTIVITIES,
                 record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False,
                 out_dir: str | os.PathLike | None = None, json_trace_path: str | None = None,
                 summary_rows: int = 0, sort_by: str = "self_cpu_time_total",
                 memory_snapshot_iter: int | None = None,
                 memory_snapshot_entries: int = 100_000,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        self.schedule = {"wait": _count("wait", wait, 0), "warmup": _count("warmup", warmup, 0),
                         "active": _count("active", active, 1),
                         "repeat": _count("repeat", repeat, 0),
                         "skip_first": _count("skip_first", skip_first, 0)}
        if isinstance(activities, str) or not set(activities) <= set(ACTIVITIES) or not activities:
            raise ValueError(f"ProfilerCallback activities must be a non-empty list drawn from "
                             f"{ACTIVITIES}, got {activities!r}")
        self.activities = tuple(activities)
        self.by_epoch = by_epoch
        self.options = {"record_shapes": record_shapes, "profile_memory": profile_memory,
                        "with_stack": with_stack, "with_flops": with_flops}
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.json_trace_path = json_trace_path
        self.summary_rows = _count("summary_rows", summary_rows, 0)
        self.sort_by = sort_by
        if memory_snapshot_iter is not None:
            _count("memory_snapshot_iter", memory_snapshot_iter, 0)
        self.memory_snapshot_iter = memory_snapshot_iter
        self.memory_snapshot_entries = _count("memory_snapshot_entries",
                                              memory_snapshot_entries, 1)
        self.traces: list[str] = []  # what this callback wrote, newest last
        self._profiler: torch.profiler.profile | None = None
        self._steps_left = 0
        self._recording_memory = False
        self._out_dir = ""
        self._logger: Any = None  # the run's logging.Logger, for the summary table

    def before_train(self, trainer: Any) -> None:
        if trainer.rank != 0:
            return
        self._out_dir = self.out_dir or posixpath.join(trainer.log_dir, "profiler")
        self._logger = trainer.logger
        if self.memory_snapshot_iter is not None:
            self._start_memory_history(trainer)
        scale = trainer.train_loop.epoch_length if self.by_epoch else 1
        sched = {k: v * scale if k != "repeat" else v for k, v in self.schedule.items()}
        cycle = sched["wait"] + sched["warmup"] + sched["active"]
        self._steps_left = sched["skip_first"] + cycle * sched["repeat"] if sched["repeat"] else -1
        activities = [torch.profiler.ProfilerActivity.CPU] if "cpu" in self.activities else []
        if "cuda" in self.activities and trainer.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        if not activities:
            warnings.warn("ProfilerCallback(activities=('cuda',)) on a run that is not on CUDA: "
                          "nothing is profiled; add 'cpu'", stacklevel=2)
            return
        self._profiler = torch.profiler.profile(
            activities=activities, schedule=torch.profiler.schedule(**sched),
            on_trace_ready=self._write_trace, **self.options)
        self._profiler.start()

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self._recording_memory and trainer.iter == self.memory_snapshot_iter:
            self._dump_memory_snapshot()
        if self._profiler is None:
            return
        self._profiler.step()
        self._steps_left -= 1
        if self._steps_left == 0:
            self._stop()

    def after_train(self, trainer: Any) -> None:
        if self._profiler is not None:
            self._stop()
        if self._recording_memory:  # training ended before memory_snapshot_iter
            torch.cuda.memory._record_memory_history(enabled=None)
            self._recording_memory = False

    def _stop(self) -> None:
        profiler, self._profiler = self._profiler, None
        profiler.stop()
        if self.summary_rows:
            self._logger.info(profiler.key_averages().table(sort_by=self.sort_by,
                                                          row_limit=self.summary_rows))

    def _write_trace(self, profiler: torch.profiler.profile) -> None:
        name = f"{socket.gethostname()}_{os.getpid()}.{profiler.step_num}.pt.trace.json"
        self._put(self.json_trace_path or posixpath.join(self._out_dir, name),
                  profiler.export_chrome_trace)

    def _start_memory_history(self, trainer: Any) -> None:
        if trainer.device.type != "cuda":
            warnings.warn("ProfilerCallback(memory_snapshot_iter=...) needs a CUDA run: no "
                          "memory snapshot is taken on " + trainer.device.type, stacklevel=3)
            return
        torch.cuda.memory._record_memory_history(max_entries=self.memory_snapshot_entries)
        self._recording_memory = True

    def _dump_memory_snapshot(self) -> None:
        name = f"memory_snapshot_iter_{self.memory_snapshot_iter}.pickle"
        self._put(posixpath.join(self._out_dir, name), torch.cuda.memory._dump_snapshot)
        torch.cuda.memory._record_memory_history(enabled=None)
        self._recording_memory = False

    def _put(self, path: str, export: Callable[[str], Any]) -> None:
        """``export`` to a local file, then copy it to ``path`` (a path or fsspec URL)."""
        fs, target = fsspec.core.url_to_fs(path)
        fs.makedirs(posixpath.dirname(target) or ".", exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, posixpath.basename(target))
            export(local)
            fs.put_file(local, target)
        self.traces.append(path)
