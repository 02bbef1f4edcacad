"""Wrapping a ``BaseModel`` in PyTorch's ``DistributedDataParallel`` without losing its steps."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainer.model import BaseModel, preprocess, run_forward


class ModuleEvalSteps:
    """Evaluation needs no gradient sync: the wrapped module's own steps run as they are."""

    module: nn.Module

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)

    def predict_step(self, data: Any) -> Any:
        return self.module.predict_step(data)


class DistributedModel(ModuleEvalSteps, DistributedDataParallel):
    """DDP whose ``train_step`` runs the forward through DDP, so gradients are averaged.

    The default ``BaseModel.train_step`` flow (preprocess, forward in ``"loss"`` mode, parse,
    update) is run with the forward going through this wrapper, as MMEngine's
    ``MMDistributedDataParallel`` does.
    """

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        module = self.module
        with optim_wrapper.optim_context(self):
            data = preprocess(module, data, True)
            losses = run_forward(self, data, mode="loss")
        loss, log_vars = module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars


class SeparateDistributedModel(ModuleEvalSteps, nn.Module):
    """DDP for a model with its own ``train_step`` (GANs, several optimizers).

    Each direct child that has trainable parameters gets its own ``DistributedDataParallel``
    (MMEngine's ``MMSeparateDistributedDataParallel`` idea). The wrappers are swapped in only
    while ``train_step`` runs, so the user's ``self.generator(z)`` calls go through DDP and
    average gradients, while the model itself, its ``state_dict`` and its checkpoints stay
    exactly those of the unwrapped model.
    """

    def __init__(self, module: nn.Module, **ddp_kwargs: Any) -> None:
        super().__init__()
        self.module = module
        self.wrappers = {
            name: DistributedDataParallel(child, **ddp_kwargs)
            for name, child in module.named_children()
            if any(p.requires_grad for p in child.parameters())
        }

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        children = self.module._modules
        originals = {name: children[name] for name in self.wrappers}
        children.update(self.wrappers)
        try:
            return self.module.train_step(data, optim_wrapper)
        finally:
            children.update(originals)


# Newer torch (2.13 here) deprecates ``broadcast_buffers`` for ``forward_sync_buffers`` and warns
# on every run that passes the old name; older torch knows only the old one.
BUFFER_SYNC_ARG = ("forward_sync_buffers"
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else "broadcast_buffers")


def wrap_model(model: nn.Module, device: torch.device, *, find_unused_parameters: bool = False,
               broadcast_buffers: bool = True, sync_batchnorm: bool = False) -> nn.Module:
    """``model`` (already on ``device``) wrapped so that its training averages gradients.

    ``broadcast_buffers`` copies rank zero's buffers at every forward (passed to DDP under
    ``BUFFER_SYNC_ARG``; with ``forward_sync_buffers=False`` DDP still copies them once at start).
    """
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    ddp_kwargs = dict(device_ids=device_ids, find_unused_parameters=find_unused_parameters,
                      **{BUFFER_SYNC_ARG: broadcast_buffers})
    if type(model).train_step is not BaseModel.train_step:
        return SeparateDistributedModel(model, **ddp_kwargs)
    return DistributedModel(model, **ddp_kwargs)
