"""A progress bar for training and evaluation, in a terminal, a notebook or a CI log."""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

from tqdm import tqdm
from trainer.callbacks.base import Callback

from trainer.arguments import check_positive_int

MODES = ("auto", "terminal", "notebook", "plain")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, Colab, VS Code)."""
    ipython = sys.modules.get("IPython")
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    if ipython is None or zmqshell is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def detect_mode(stream: IO[str]) -> str:
    """``"notebook"`` in a Jupyter kernel, ``"terminal"`` on a TTY, else ``"plain"``."""
    if in_notebook():
        return "notebook"
    isatty = getattr(stream, "isatty", None)
    return "terminal" if callable(isatty) and isatty() else "plain"


class PlainBar:
    """tqdm's interface for logs that are not a terminal: whole lines, no control characters.

    A line is written every ``every`` steps (never when ``every`` is 0) and when the bar closes.
    """

    def __init__(self, total: int | None, desc: str, every: int, file: IO[str],
                 initial: int = 0) -> None:
        self.total, self.desc, self.every, self.file = total, desc, every, file
        self.n, self.postfix, self.start, self.closed = initial, {}, time.perf_counter(), False
        self._initial, self._last_line = initial, -1

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.every and self.n % self.every == 0:
            self._line()

    def set_postfix(self, postfix: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(postfix)

    def set_description(self, desc: str, refresh: bool = False) -> None:
        self.desc = desc

    def reset(self, total: int | None = None) -> None:
        self.total, self.n, self._initial, self._last_line = total, 0, 0, -1
        self.start = time.perf_counter()

    def close(self) -> None:
        if not self.closed and self.n != self._last_line and self.n > self._initial:
            self._line()
        self.closed = True

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        percent = f" [{100 * self.n / self.total:3.0f}%]" if self.total else ""
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        self.file.write(f"{self.desc}: {done}{percent} {elapsed:.1f}s, {rate:.2f}it/s{extra}\n")
        self.file.flush()
        self._last_line = self.n


class ProgressBarCallback(Callback):
    """One bar for training and one per validation/test pass, on rank zero only.

    Training counts what the loop counts: the batches of the current epoch (the bar restarts
    each epoch, titled ``Epoch 3/10``) or the iterations of an iteration-based run. The postfix
    shows the latest loss and learning rate.

    Where the output goes decides the look (``mode="auto"``): a widget in a Jupyter notebook
    (when ``ipywidgets`` is installed; a text bar otherwise), a redrawn text bar in a terminal,
    and whole lines without carriage returns when the output is not a terminal (CI logs, files).

    Args:
        refresh_interval: iterations between updates of the loss/lr postfix, which read values
            back from the device; ``None`` uses the Trainer's ``log_interval``, so the bar syncs
            only on iterations that log anyway.
        mode: ``"auto"``, ``"terminal"``, ``"notebook"`` or ``"plain"``.
        plain_interval: in plain mode, iterations between lines of the training bar; ``None``
            writes about ten lines per bar. Evaluation bars write one line when they finish.

    Example:
        >>> ProgressBarCallback(mode="plain", plain_interval=100)
        ProgressBarCallback(priority='ABOVE_NORMAL')
    """

    # Before the logger (BELOW_NORMAL), so an evaluation bar is gone before the metrics line.
    priority = "ABOVE_NORMAL"

    def __init__(self, refresh_interval: int | None = None, mode: str = "auto",
                 plain_interval: int | None = None, priority: int | str | None = None) -> None:
        super().__init__(priority)
        for name, value in (("refresh_interval", refresh_interval),
                            ("plain_interval", plain_interval)):
            check_positive_int(name, value, allow_none=True)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.refresh_interval = refresh_interval
        self.mode = mode
        self.plain_interval = plain_interval
        self._refresh = refresh_interval or 1
        self._train: Any = None
        self._eval: Any = None
        self._enabled = True

    def _bar(self, total: int | None, desc: str, initial: int = 0, train: bool = True) -> Any:
        stream = sys.stderr
        mode = detect_mode(stream) if self.mode == "auto" else self.mode
        if mode == "plain":
            every = (self.plain_interval or max(1, math.ceil((total or 100) / 10))) if train else 0
            return PlainBar(total, desc, every, stream, initial)
        kwargs = dict(total=total, desc=desc, initial=initial, leave=train, unit="it",
                      dynamic_ncols=True)
        if mode == "notebook":
            try:
                import ipywidgets  # noqa: F401  (tqdm.notebook needs it to draw)
                from tqdm.notebook import tqdm as notebook_tqdm
                return notebook_tqdm(**kwargs)
            except ImportError:
                pass  # a text bar: notebooks render carriage returns
        return tqdm(file=stream, mininterval=0.1, **kwargs)

    # Training.
    def before_train(self, trainer: Any) -> None:
        self._enabled = trainer.rank == 0
        self._refresh = self.refresh_interval or trainer.log_interval
        if self._enabled and not trainer.by_epoch:
            self._train = self._bar(trainer.max_iters, "Train", initial=trainer.iter)

    def before_train_epoch(self, trainer: Any) -> None:
        if not (self._enabled and trainer.by_epoch):
            return
        desc = f"Epoch {trainer.epoch + 1}/{trainer.max_epochs}"
        self._train = self._bar(trainer.train_loop.epoch_length, desc,
                                initial=trainer.state.batch_idx)

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        bar = self._train
        if bar is None:
            return
        if (batch_idx + 1) % self._refresh == 0:
            bar.set_postfix(postfix(trainer), refresh=False)
        bar.update(1)

    def after_train_epoch(self, trainer: Any) -> None:
        self.after_train(trainer)  # each epoch's bar stays as one finished line

    def after_train(self, trainer: Any) -> None:
        if self._train is not None:
            self._train.close()
            self._train = None

    # Evaluation.
    def _start_eval(self, trainer: Any, desc: str, loader: Any) -> None:
        if trainer.rank != 0:
            return
        try:
            total = len(loader)
        except TypeError:
            total = None
        self._eval = self._bar(total, desc, train=False)

    def before_val_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "Validation", trainer.val_dataloader)

    def before_test_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "Test", trainer.test_dataloader)

    def _step_eval(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                   outputs: Any = None) -> None:
        if self._eval is not None:
            self._eval.update(1)

    after_val_iter = after_test_iter = _step_eval  # type: ignore[assignment]

    def _end_eval(self, trainer: Any, metrics: dict | None = None) -> None:
        if self._eval is not None:
            self._eval.close()
            self._eval = None

    after_val_epoch = after_test_epoch = _end_eval  # type: ignore[assignment]

    def after_run(self, trainer: Any) -> None:
        for bar in (self._train, self._eval):
            if bar is not None:
                bar.close()
        self._train = self._eval = None


def postfix(trainer: Any) -> dict[str, str]:
    """The latest loss and learning rate (reads them back from the device)."""
    scalars = trainer.message_hub.scalars
    shown = {}
    for key, fmt in (("train/loss", ".4f"), ("train/lr", ".3e")):
        buffer = scalars.get(key)
        if buffer is not None and len(buffer):
            shown[key[6:]] = format(buffer.current(), fmt)
    return shown
