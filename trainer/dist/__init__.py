"""The one place that knows whether a process group is running.

Everything else calls these helpers, which are cheap no-ops in a single process.
"""

from __future__ import annotations

import datetime
import functools
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

F = TypeVar("F", bound=Callable[..., Any])


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        torch_dist.barrier()


def all_reduce(tensor: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """Reduce ``tensor`` in place over all ranks (``"sum"`` or ``"mean"``) and return it."""
    if op not in ("sum", "mean"):
        raise ValueError(f"all_reduce op must be 'sum' or 'mean', got {op!r}")
    if is_distributed():
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        if op == "mean":
            tensor.div_(get_world_size())
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order; ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def master_only(fn: F) -> F:
    """Run ``fn`` on rank zero only; other ranks get ``None``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper  # type: ignore[return-value]


def is_model_wrapper(model: Any) -> bool:
    """True for a wrapper that holds the user's model as ``.module`` (DDP, ``DataParallel``).

    An FSDP2 model is no wrapper: ``fully_shard`` shards the model in place, so it is the
    user's own module (with DTensor parameters) and has no ``.module``.
    """
    from trainer.dist.ddp import SeparateDistributedModel

    return isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel,
                              SeparateDistributedModel))


def launched_externally() -> bool:
    """True under ``torchrun`` (or any launcher that sets ``WORLD_SIZE`` and ``RANK``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_process_group(device_type: str, timeout_s: float) -> None:
    """Join the process group described by the environment (torchrun's variables).

    NCCL for CUDA, gloo otherwise; collectives that wait longer than ``timeout_s`` fail instead
    of hanging forever.
    """
    if is_distributed():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    torch_dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    from lightning_utilities.core.rank_zero import rank_zero_only

    rank_zero_only.rank = get_rank()


def destroy_process_group() -> None:
    if is_distributed():
        torch_dist.destroy_process_group()


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over all ranks in one collective (every rank must call it)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    all_reduce(tensor, op="mean")
    return dict(zip(keys, tensor.tolist()))
