"""Where a run executes: one process, or DDP or FSDP over a process group (gloo on CPU, NCCL on
CUDA)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from trainer import dist
from trainer.data.samplers import distribute_train_loader, shard_eval_loader
from trainer.dist.ddp import wrap_model
from trainer.dist.fsdp import FSDPOptions


@dataclass(frozen=True)
class DDPOptions:
    """Options of ``strategy=dict(type="ddp", ...)``.

    Attributes:
        find_unused_parameters: let DDP tolerate parameters that get no gradient.
        broadcast_buffers: copy rank zero's buffers (BatchNorm statistics) every forward;
            passed as DDP's ``forward_sync_buffers`` where torch has it (see ``wrap_model``).
        sync_batchnorm: convert BatchNorm layers to ``SyncBatchNorm``.
        timeout_s: seconds a collective may wait before failing instead of hanging.
    """

    find_unused_parameters: bool = False
    broadcast_buffers: bool = True
    sync_batchnorm: bool = False
    timeout_s: float = 1800.0


OPTIONS = {"ddp": DDPOptions, "fsdp": FSDPOptions}


def parse_strategy(strategy: Any) -> tuple[str, DDPOptions | FSDPOptions]:
    """``"auto"``, ``"ddp"``, ``"fsdp"`` or ``dict(type="ddp"|"fsdp", **options)``."""
    if isinstance(strategy, Mapping):
        options = dict(strategy)
        kind = options.pop("type", "ddp")
        known = {f.name for f in fields(OPTIONS.get(kind, DDPOptions))}
        unknown = set(options) - known
        if kind not in OPTIONS or unknown:
            raise ValueError(
                f"strategy dict must be dict(type='ddp' or 'fsdp', ...) with options from "
                f"{sorted(known)}; got type={kind!r} and unknown options {sorted(unknown)}")
        if kind == "fsdp":
            return kind, FSDPOptions.from_dict(options)
        return "ddp", DDPOptions(**options)
    if strategy not in ("auto", "ddp", "fsdp"):
        raise ValueError(f"strategy must be one of ['auto', 'ddp', 'fsdp'] or "
                         f"dict(type='ddp', ...), got {strategy!r}")
    return strategy, FSDPOptions() if strategy == "fsdp" else DDPOptions()


class Strategy:
    """Sets up the process group, and adapts the model and loaders to it.

    In one process every method hands its argument back unchanged.
    """

    def __init__(self, kind: str, options: DDPOptions | FSDPOptions, *, devices: int,
                 device_type: str, precision: str = "32") -> None:
        self.kind, self.devices, self.device_type, self.options = kind, devices, device_type, options
        self.precision = precision
        if kind == "fsdp" and devices == 1 and not (dist.launched_externally()
                                                    or dist.is_distributed()):
            raise ValueError(
                "strategy='fsdp' shards the model over several processes, but devices=1 and no "
                "process group: pass devices=2 (or more), launch with torchrun, or use "
                "strategy='auto' for one process")

    def setup(self) -> torch.device:
        """Join the process group when launched by torchrun or by ``spawn``; the device to use."""
        if dist.launched_externally():
            dist.init_process_group(self.device_type, self.options.timeout_s)
        if self.device_type == "cuda":
            return torch.device("cuda", dist.local_rank() if dist.is_distributed() else
                                torch.cuda.current_device())
        return torch.device(self.device_type)

    @property
    def needs_spawn(self) -> bool:
        """``devices > 1`` asked for in a plain process: the trainer starts the workers."""
        return self.devices > 1 and not dist.is_distributed()

    @property
    def sharded(self) -> bool:
        """The model is sharded with FSDP2 (and checkpoints are DCP directories)."""
        return self.kind == "fsdp" and dist.is_distributed()

    def wrap_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self.sharded:
            from trainer.dist.fsdp import shard_model

            return shard_model(model, self.options, self.precision, device)
        if dist.get_world_size() == 1:
            return model
        o = self.options
        return wrap_model(model, device, find_unused_parameters=o.find_unused_parameters,
                          broadcast_buffers=o.broadcast_buffers, sync_batchnorm=o.sync_batchnorm)

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's weights on CPU (a collective under FSDP: every rank calls it)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            return get_model_state_dict(
                model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v.cpu() for k, v in model.state_dict().items()}

    def eval_context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Around an evaluation pass: FSDP gathers the parameters once, so ranks with different
        numbers of batches never wait on each other."""
        if self.sharded:
            from trainer.dist.fsdp import gathered

            return gathered(model, self.options.reshard_after_forward)
        return contextlib.nullcontext()

    def train_loader(self, loader: Iterable, seed: int) -> Iterable:
        return distribute_train_loader(loader, dist.get_rank(), dist.get_world_size(), seed)

    def eval_loader(self, loader: Iterable) -> Iterable:
        return shard_eval_loader(loader, dist.get_rank(), dist.get_world_size())
