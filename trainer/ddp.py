"""Wrapping a ``BaseModel`` in PyTorch's ``DistributedDataParallel`` without losing its steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainer.model import BaseModel, run_forward


class DistributedModel(DistributedDataParallel):
    """DDP whose ``train_step`` runs the forward through DDP, so gradients are averaged.

    The default ``BaseModel.train_step`` flow (preprocess, forward in ``"loss"`` mode, parse,
    update) is run with the forward going through this wrapper, as MMEngine's
    ``MMDistributedDataParallel`` does. Validation, test and prediction need no gradient sync
    and call the module's own steps.
    """

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        module = self.module
        with optim_wrapper.optim_context(self):
            data = module.data_preprocessor(data, True)
            losses = run_forward(self, data, mode="loss")
        loss, log_vars = module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)

    def predict_step(self, data: Any) -> Any:
        return self.module.predict_step(data)


def wrap_model(model: nn.Module, device: torch.device, *, find_unused_parameters: bool = False,
               broadcast_buffers: bool = True, sync_batchnorm: bool = False) -> DistributedModel:
    """``model`` (already on ``device``) inside a ``DistributedModel``."""
    if type(model).train_step is not BaseModel.train_step:
        raise NotImplementedError(
            f"{type(model).__name__} overrides train_step, which DDP cannot route through its "
            "gradient synchronisation yet; train it in one process, or keep the default "
            "train_step and put the custom logic in forward(mode='loss')")
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedModel(model, device_ids=device_ids,
                            find_unused_parameters=find_unused_parameters,
                            broadcast_buffers=broadcast_buffers)
