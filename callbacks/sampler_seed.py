"""MMEngine's ``DistSamplerSeedHook``, kept by name so that configs naming it still load."""

from __future__ import annotations

from trainer.callbacks.base import Callback


class DistSamplerSeedCallback(Callback):
    """A no-op: the training loop itself calls ``set_epoch`` on the sampler it iterates.

    MMEngine's hook set the epoch on ``runner.train_dataloader``; here the strategy may rebuild
    the user's loader (a ``DistributedSampler``, a resumable wrapper), and only the loop holds
    the loader actually iterated, so the loop owns the call. Switching this callback off
    (``default_callbacks={"sampler_seed": None}``) changes nothing.
    """

    priority = "NORMAL"
