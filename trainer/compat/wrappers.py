"""``is_model_wrapper``: whether a model is a wrapper holding the user's model as ``.module``."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer.dist.ddp import SeparateDistributedModel

MODEL_WRAPPERS: tuple[type[nn.Module], ...] = (
    nn.parallel.DistributedDataParallel, nn.DataParallel, SeparateDistributedModel)


def is_model_wrapper(model: Any) -> bool:
    """True for DDP, ``DataParallel`` and the Trainer's own DDP wrappers, which hold the model
    as ``.module`` (MMEngine's ``is_model_wrapper``). An FSDP2 model is no wrapper:
    ``fully_shard`` changes the model's class in place, so it has no ``.module``.

    Example:
        >>> is_model_wrapper(nn.DataParallel(nn.Linear(2, 1))), is_model_wrapper(nn.Linear(2, 1))
        (True, False)
    """
    return isinstance(model, MODEL_WRAPPERS)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's model inside a wrapper, or ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
