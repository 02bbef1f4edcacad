"""Puts the run's counters, learning rates and step outputs into the message hub."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.base import Callback


class RuntimeInfoCallback(Callback):
    """Keep ``trainer.message_hub`` current: ``train/<output>`` and ``train/lr`` every iteration.

    Outputs are stored as the tensors the step returned; nothing is moved to the CPU here. The
    learning rate is the one the iteration used: it is read after the step, before the
    schedulers (lower priority) move it. One :meth:`MessageHub.record` an iteration.
    """

    priority = "VERY_HIGH"

    def before_train(self, trainer: Any) -> None:
        for key in ("max_epochs", "max_iters", "epoch", "iter"):
            trainer.message_hub.update_info(key, getattr(trainer, key))

    def before_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None) -> None:
        trainer.message_hub.runtime_info["iter"] = trainer.state.iter

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        row = {}
        for name, values in trainer.optim_wrapper.get_lr().items():
            row[name] = values[0]
        if outputs:
            row.update(outputs)
        trainer.message_hub.record(row, prefix="train/")

    def after_train_epoch(self, trainer: Any) -> None:
        trainer.message_hub.update_info("epoch", trainer.epoch)
