"""A progress bar for training and evaluation, in a terminal, a notebook or a CI log."""

from __future__ import annotations

import importlib.util
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
        if self.every and self.n // self.every > (self.n - n) // self.every:
            self._line()

    def steps_before_line(self) -> int:
        """Updates of one step after this one that would not write a line: the caller may
        skip them and catch up with one larger ``update``."""
        if self.every:
            return self.every - self.n % self.every - 1
        return max(0, self.total - self.n) if self.total else 0  # a line only when it closes

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
    shows what the logger last logged, so the bar's ``loss`` is the log line's (smoothed over
    the logger's window) and costs no device read of its own, and, after a validation, its
    metrics (``val/accuracy``).

    Where the output goes decides the look (``mode="auto"``): a widget in a Jupyter notebook
    with ``ipywidgets`` (whole lines, as in a log, without it), a redrawn text bar in a
    terminal, and whole lines without carriage returns when the output is not a terminal (CI
    logs, files): one line per training epoch (about ten per iteration-based run), none for
    evaluation, whose metrics the logger prints.

    Args:
        mode: ``"auto"``, ``"terminal"``, ``"notebook"`` or ``"plain"``.
        plain_interval: in plain mode, iterations between lines of the training bar; ``None``
            writes one line per epoch (epoch-based) or about ten per run (iteration-based).

    Example:
        >>> ProgressBarCallback(mode="plain", plain_interval=100)
        ProgressBarCallback(priority='ABOVE_NORMAL')
    """

    # Before the logger (BELOW_NORMAL), so an evaluation bar is gone before the metrics line.
    priority = "ABOVE_NORMAL"

    def __init__(self, mode: str = "auto", plain_interval: int | None = None,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        check_positive_int("plain_interval", plain_interval, allow_none=True)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.plain_interval = plain_interval
        self._train: Any = None
        self._eval: Any = None
        self._enabled = True
        self._shown: dict[str, str] = {}

    def _mode(self) -> str:
        mode = detect_mode(sys.stderr) if self.mode == "auto" else self.mode
        if mode == "notebook" and importlib.util.find_spec("ipywidgets") is None:
            # A text bar redrawn around log lines leaves fragments in a notebook: whole lines,
            # on stdout with the log lines, so the notebook keeps them in order.
            return "lines"
        return mode

    def _bar(self, total: int | None, desc: str, initial: int = 0, train: bool = True,
             every: int = 0) -> Any:
        mode = self._mode()
        if mode in ("plain", "lines"):
            stream = sys.stdout if mode == "lines" else sys.stderr
            return PlainBar(total, desc, self.plain_interval or every, stream,
                            initial) if train else None
        kwargs = dict(total=total, desc=desc, initial=initial, leave=train, unit="it",
                      dynamic_ncols=True)
        if mode == "notebook":
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**kwargs)
        return tqdm(file=sys.stderr, mininterval=0.1, **kwargs)

    def before_run(self, trainer: Any) -> None:
        self._enabled = trainer.rank == 0
        self._shown = {}
        trainer.message_hub.subscribe(self._show)

    def _show(self, mode: str, scalars: dict[str, float], step: int) -> None:
        """A record the logger published: its losses and lr, or the metrics of a validation."""
        if mode == "train":
            losses = {k: format(v, ".4f") for k, v in scalars.items() if "loss" in k}
            rates = {k: format(v, ".3e") for k, v in scalars.items()
                     if k == "lr" or k.endswith(".lr")}
            metrics = {k: v for k, v in self._shown.items() if k.startswith("val/")}
            self._shown = {**losses, **rates, **metrics}
        elif mode == "val":
            self._shown.update({f"val/{k}": format(v, ".4f") for k, v in scalars.items()})
        if self._train is not None:
            self._train.set_postfix(self._shown, refresh=False)

    # Training.
    def before_train(self, trainer: Any) -> None:
        if self._enabled and not trainer.by_epoch:
            self._train = self._bar(trainer.max_iters, "Train", initial=trainer.iter,
                                    every=math.ceil(trainer.max_iters / 10))

    def before_train_epoch(self, trainer: Any) -> None:
        if not (self._enabled and trainer.by_epoch):
            return
        desc = f"Epoch {trainer.epoch + 1}/{trainer.max_epochs}"
        self._train = self._bar(trainer.train_loop.epoch_length, desc,
                                initial=trainer.state.batch_idx)
        self._train.set_postfix(self._shown, refresh=False)

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        # batch_idx + 1: the batches of this epoch done (epoch-based), or the iterations done.
        if self._train is not None:
            self._train.update(batch_idx + 1 - self._train.n)

    def skippable_train_iters(self, trainer: Any, batch_idx: int) -> int:
        """A plain bar only writes a line every so many iterations: the ones in between may
        be skipped, as its count is set from the loop's. A redrawn bar sees every one."""
        return self._train.steps_before_line() if isinstance(self._train, PlainBar) else 0

    def after_train(self, trainer: Any) -> None:
        """Close the training bar at the loop's count, which it may not have been told of
        yet (see :meth:`skippable_train_iters`)."""
        if self._train is not None:
            done = trainer.state.batch_idx if trainer.by_epoch else trainer.iter
            self._train.update(done - self._train.n)
            self._train.close()
            self._train = None

    after_train_epoch = after_train  # each epoch's bar stays as one finished line

    # Evaluation.
    def _start_eval(self, trainer: Any, desc: str, loop: Any) -> None:
        if trainer.rank != 0:
            return
        try:
            total = len(loop.dataloader)  # this rank's share, not the whole loader given
        except TypeError:
            total = None
        self._eval = self._bar(total, desc, train=False)

    def before_val_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "Validation", trainer.val_loop)

    def before_test_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "Test", trainer.test_loop)

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
        trainer.message_hub.unsubscribe(self._show)
        self.after_train(trainer)  # a failed or interrupted run: its bar ends at its count
        if self._eval is not None:
            self._eval.close()
            self._eval = None
