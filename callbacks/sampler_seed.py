"""Gives a distributed sampler its epoch so every epoch is shuffled differently."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.base import Callback

from trainer.loops import set_sampler_epoch


class DistSamplerSeedCallback(Callback):
    """Call ``sampler.set_epoch(trainer.epoch)`` before each training epoch (MMEngine's hook)."""

    priority = "NORMAL"

    def before_train_epoch(self, trainer: Any) -> None:
        set_sampler_epoch(trainer.train_dataloader, trainer.epoch)
