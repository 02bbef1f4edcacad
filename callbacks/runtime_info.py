"""Puts the run's counters, learning rates and step outputs into the message hub."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.base import Callback


class RuntimeInfoCallback(Callback):
    """Keep ``trainer.message_hub`` current: ``train/<output>`` and ``train/lr`` every iteration.

    Outputs are stored as the tensors the step returned; nothing is moved to the CPU here.
    """

    priority = "VERY_HIGH"

    def before_train(self, trainer: Any) -> None:
        for key in ("max_epochs", "max_iters", "epoch", "iter"):
            trainer.message_hub.update_info(key, getattr(trainer, key))

    def before_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None) -> None:
        hub = trainer.message_hub
        hub.runtime_info["iter"] = trainer.state.iter
        for name, values in trainer.optim_wrapper.get_lr().items():
            hub.update_scalar("train/" + name, values[0])

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if outputs:
            update = trainer.message_hub.update_scalar
            for key, value in outputs.items():
                update("train/" + key, value)

    def after_train_epoch(self, trainer: Any) -> None:
        trainer.message_hub.update_info("epoch", trainer.epoch)
