"""What throughput figures need: a batch's size, the FLOPs of one iteration, a device's peak.

Kept apart from the timer callback so that its per-iteration path stays a few lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Dense peak FLOP/s per device by name fragment: (16-bit, TF32, float32), from the vendors' data
# sheets (SXM parts). A device not listed needs peak_flops= for MFU.
_PEAK_FLOPS: tuple[tuple[str, float, float, float], ...] = (
    ("H200", 989e12, 494e12, 67e12),
    ("H100", 989e12, 494e12, 67e12),
    ("A100", 312e12, 156e12, 19.5e12),
    ("L40S", 362e12, 183e12, 91.6e12),
    ("L4", 121e12, 60e12, 30.3e12),
    ("A10G", 70e12, 35e12, 31.2e12),
    ("V100", 125e12, 15.7e12, 15.7e12),
)


def batch_size(data: Any) -> int | None:
    """Samples in a batch: the length of its first tensor (in a dict, tuple or list), or None."""
    if isinstance(data, torch.Tensor):
        return int(data.shape[0]) if data.ndim else None
    values = data.values() if isinstance(data, Mapping) else data
    if isinstance(values, (list, tuple)) or isinstance(data, Mapping):
        for value in values:
            size = batch_size(value)
            if size is not None:
                return size
    return None


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The known dense peak FLOP/s of a CUDA ``device`` at ``precision``, else None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    tf32 = torch.get_float32_matmul_precision() != "highest"
    for fragment, half, tensor_float, full in _PEAK_FLOPS:
        if fragment in name:
            return half if precision != "32" else tensor_float if tf32 else full
    return None


class _FlopMode(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formulas over the ATen operations run under it.

    ``FlopCounterMode`` also tracks which module each operation ran in (hooks on every module
    and on the backward graph), which doubles the cost of the counted iteration; only the
    total is needed here.
    """

    def __init__(self) -> None:
        super().__init__()
        from torch.utils.flop_counter import flop_registry

        self.formulas, self.total = flop_registry, 0
        self._atomic = {torch.ops.prim.device.default}  # operations that do not decompose

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = self.formulas.get(func.overloadpacket)
        if formula is None and func not in self._atomic:
            with self:  # a composite operation: count the ones it decomposes into
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
            self._atomic.add(func)  # asked once: the mode is entered again for each attempt
        out = func(*args, **kwargs)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


class FlopCount:
    """Counts the FLOPs of the matrix products (and convolutions, attention) run while open.

    The formulas are ``torch.utils.flop_counter``'s, forward and backward: a linear layer of
    ``in`` -> ``out`` features on ``b`` samples costs ``2*b*in*out`` forward, the same again for
    the weight gradient and again for the input gradient when its input needs one. Element-wise
    operations (activations, losses, optimizer updates) are not counted.

    It is opened and closed in different hooks; when the counted iteration raises, the next
    count to open closes the one left open, so a failed run does not leave the mode behind.
    """

    _open: FlopCount | None = None  # at most one in the process, since the mode is global

    def __init__(self) -> None:
        if FlopCount._open is not None:
            FlopCount._open.close()
        self._mode = _FlopMode()
        self._mode.__enter__()
        FlopCount._open = self

    def close(self) -> int:
        """Stop counting; the FLOPs counted."""
        if FlopCount._open is self:
            self._mode.__exit__(None, None, None)
            FlopCount._open = None
        return int(self._mode.total)
