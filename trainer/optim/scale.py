"""MMEngine's ``auto_scale_lr``: the linear scaling rule for a changed total batch size."""

from __future__ import annotations

from typing import Any

from trainer.optim.wrapper_dict import OptimWrapperDict


def scale_lr(optim_wrapper: Any, base_batch_size: int, batch_size: int | None,
             world_size: int) -> float:
    """Multiply every learning rate by ``batch_size * world_size / base_batch_size``."""
    if batch_size is None:
        raise ValueError("auto_scale_lr needs a train_dataloader with a batch_size")
    ratio = batch_size * world_size / base_batch_size
    wrappers = optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict) \
        else [optim_wrapper]
    for wrapper in wrappers:
        for group in wrapper.param_groups:
            group["lr"] *= ratio
    return ratio
