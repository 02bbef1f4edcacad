"""Interruptions that save: Ctrl-C and ``interrupt_signals`` stop ``fit`` at an iteration boundary.

A signal handler only records the signal. The training loop calls ``check(done)`` at every
iteration boundary; in one process that reads the recorded flag. With several processes the
ranks must stop at the same iteration, so they agree through an asynchronous all-reduce on a
CPU (gloo) group every ``AGREE_EVERY`` iterations, started at one check and read at the next:
no rank waits for another and no GPU stream is synchronised. The run then saves
``interrupted_iter_{n}.pth`` and ends as the signal asked: ``KeyboardInterrupt`` for Ctrl-C,
exit code 128 + signal number otherwise (143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

import torch
import torch.distributed as torch_dist

from trainer import dist
from trainer.checkpoint.io import read_last_checkpoint
from trainer.logger import print_log

AGREE_EVERY = 8  # iterations between the ranks' agreements on stopping
UNCATCHABLE = ("SIGKILL", "SIGSTOP")


def check_signals(signals: Any) -> tuple[signal.Signals, ...]:
    """``("SIGTERM", "SIGUSR1")`` (names, with or without ``SIG``, or ``signal.Signals``)."""
    if isinstance(signals, (str, int)) or not isinstance(signals, Iterable):
        raise ValueError(
            "interrupt_signals must be a tuple of signal names such as ('SIGTERM', 'SIGUSR1'), "
            f"got {signals!r}")
    checked = []
    for sig in signals:
        name = sig.name if isinstance(sig, signal.Signals) else str(sig).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in UNCATCHABLE or not isinstance(getattr(signal, name, None), signal.Signals):
            catchable = ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"]
            raise ValueError(
                f"interrupt_signals has {sig!r}, which is not a signal a process can catch on "
                f"this system; use names such as {[s for s in catchable if hasattr(signal, s)]}")
        checked.append(getattr(signal, name))
    return tuple(dict.fromkeys(checked))


class Interrupted(Exception):
    """Raised at the iteration boundary where all ranks agreed to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class InterruptGuard:
    """Catches Ctrl-C and ``signals`` while entered; restores the previous handlers on exit.

    Ctrl-C a second time before the save has finished stops at once (``KeyboardInterrupt``); the
    save is atomic, so the previous checkpoint and ``last_checkpoint`` stay intact.
    """

    def __init__(self, signals: tuple[signal.Signals, ...]) -> None:
        self.signals = signals
        self.requested = 0  # the first signal received, 0 when none
        self.saving = False
        self._previous: dict[int, Any] = {}
        self._group: Any = None
        self._flag: torch.Tensor | None = None
        self._work: Any = None

    def __enter__(self) -> InterruptGuard:
        self.requested, self.saving, self._flag, self._work = 0, False, None, None
        if dist.get_world_size() > 1:
            self._group = torch_dist.new_group(backend="gloo")
        if threading.current_thread() is threading.main_thread():
            for sig in dict.fromkeys((signal.SIGINT, *self.signals)):
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:  # the process was told to ignore it
                    self._previous[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        self.saving = False
        if self._group is not None and exc[0] is None:
            torch_dist.destroy_process_group(self._group)
        self._group = None

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and (self.saving or self.requested == signal.SIGINT):
            raise KeyboardInterrupt
        self.requested = self.requested or signum

    def check(self, done: int) -> None:
        """Raise ``Interrupted`` when the ranks agree to stop here (``done`` iterations done)."""
        if self._group is None:
            if self.requested:
                raise Interrupted(self.requested)
            return
        if done % AGREE_EVERY:
            return
        if self._work is not None:
            self._work.wait()
            if self._flag[0]:
                raise Interrupted(int(self._flag[0]))
        self._flag = torch.tensor([self.requested], dtype=torch.int32)
        self._work = torch_dist.all_reduce(self._flag, op=torch_dist.ReduceOp.MAX,
                                           group=self._group, async_op=True)

    def pending(self) -> int:
        """The signal any rank received that training ended before acting on (0: none).

        Every rank calls it once, when the loop has finished.
        """
        if self._group is None:
            return self.requested
        if self._work is not None:
            self._work.wait()
        flag = torch.tensor([self.requested], dtype=torch.int32)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX, group=self._group)
        return int(flag[0])


@contextlib.contextmanager
def forwarding(pids: list[int], signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """In the process that started the workers: pass ``signals`` on to them while they run.

    Ctrl-C is only swallowed: the terminal (and Jupyter) send it to the whole process group, so
    the workers have it already, and forwarding it would count as a second Ctrl-C.
    """
    def forward(signum: int, frame: Any) -> None:
        if signum != signal.SIGINT:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in dict.fromkeys((signal.SIGINT, *signals)):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def end_as(signum: int) -> NoReturn:
    """End the way the signal asks: ``KeyboardInterrupt`` for Ctrl-C, else exit 128 + signum."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt from None
    sys.exit(128 + signum)


def exit_code_signal(code: int | None, signals: Iterable[int]) -> int:
    """The signal a worker's exit code stands for when it ended by an interruption, else 0."""
    for sig in (signal.SIGINT, *signals):
        if code in (128 + sig, -sig):
            return int(sig)
    return 0


@contextlib.contextmanager
def saving_interruptions(trainer: Any) -> Iterator[None]:
    """Around the training loop: on an agreed interruption save, say so and end."""
    guard = trainer.interrupts
    with guard:
        try:
            yield
        except Interrupted as stop:
            signum = stop.signum
            guard.saving = True
            path = trainer.save_interrupted()
            print_log(f"{stop}: training stopped after iteration {trainer.iter} and saved {path}; "
                      "run the same script again with resume=True to continue from there")
        else:
            signum = guard.pending()
            if signum:
                last = read_last_checkpoint(trainer.work_dir)
                print_log(f"{signal.Signals(signum).name}: training had already finished"
                          + (f"; its last checkpoint is {last}" if last else ""))
    if signum:
        end_as(signum)
