"""A tqdm progress bar for training and evaluation, in a terminal, a notebook or a CI log."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from callbacks.base import Callback
from trainer import dist


class ProgressBarCallback(Callback):
    """One bar over training iterations and one per validation/test pass, on rank zero.

    The plain ``tqdm`` text bar is used (no widgets), so a notebook shows it as text. When the
    output is not a terminal the bar refreshes rarely, to keep CI logs short.

    Args:
        refresh_interval: iterations between updates of the loss/lr postfix (a device sync).
    """

    priority = "LOW"

    def __init__(self, refresh_interval: int = 20, priority: int | str | None = None) -> None:
        super().__init__(priority)
        if not isinstance(refresh_interval, int) or refresh_interval <= 0:
            raise ValueError(f"refresh_interval must be a positive int, got {refresh_interval!r}")
        self.refresh_interval = refresh_interval
        self._train_bar: tqdm | None = None
        self._eval_bar: tqdm | None = None

    @staticmethod
    def _bar(**kwargs: Any) -> tqdm:
        tty = sys.stderr.isatty()
        return tqdm(disable=not dist.is_main_process(), dynamic_ncols=True,
                    mininterval=0.1 if tty else 30.0, file=sys.stderr, **kwargs)

    def before_train(self, trainer: Any) -> None:
        self._train_bar = self._bar(total=trainer.max_iters, initial=trainer.iter, desc="train",
                                    unit="it")

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        bar = self._train_bar
        bar.update(1)
        if (trainer.iter + 1) % self.refresh_interval == 0 and not bar.disable:
            postfix = {"epoch": trainer.epoch}
            hub = trainer.message_hub.scalars
            if "train/loss" in hub:
                postfix["loss"] = f"{hub['train/loss'].current():.4f}"
            if "train/lr" in hub:
                postfix["lr"] = f"{hub['train/lr'].current():.3e}"
            bar.set_postfix(postfix, refresh=False)

    def after_train(self, trainer: Any) -> None:
        self._train_bar.close()

    def _start_eval(self, trainer: Any, stage: str, loader: Any) -> None:
        try:
            total = len(loader)
        except TypeError:
            total = None
        self._eval_bar = self._bar(total=total, desc=stage, leave=False, unit="it")

    def before_val_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "val", trainer.val_dataloader)

    def before_test_epoch(self, trainer: Any) -> None:
        self._start_eval(trainer, "test", trainer.test_dataloader)

    def _step_eval(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                   outputs: Any = None) -> None:
        self._eval_bar.update(1)

    after_val_iter = after_test_iter = _step_eval  # type: ignore[assignment]

    def _end_eval(self, trainer: Any, metrics: dict | None = None) -> None:
        self._eval_bar.close()

    after_val_epoch = after_test_epoch = _end_eval  # type: ignore[assignment]
