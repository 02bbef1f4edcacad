"""``AmpOptimWrapper``: mixed precision on top of ``OptimWrapper``.

The forward pass runs under ``torch.autocast`` inside :meth:`AmpOptimWrapper.optim_context`;
float16 scales the loss with a ``GradScaler`` (which unscales before clipping and skips steps
whose gradients hold inf/NaN); bfloat16 has float32's range and needs no scaling.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from trainer.arguments import is_number
from trainer.optim.wrapper import OptimWrapper

_DTYPES = {
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
_SCALER_KEYS = {"init_scale", "growth_factor", "backoff_factor", "growth_interval"}


class AmpOptimWrapper(OptimWrapper):
    """Automatic mixed precision: autocast in :meth:`optim_context`, loss scaling for float16.

    Args:
        optimizer: the torch optimizer to drive.
        loss_scale: ``"dynamic"`` (``GradScaler`` defaults), a positive float (a static
            scale) or a dict of ``GradScaler`` arguments (``init_scale``, ``growth_factor``,
            ``backoff_factor``, ``growth_interval``). Only used with float16.
        dtype: ``None`` (float16 on CUDA, bfloat16 elsewhere), ``"float16"``, ``"bfloat16"`` or
            the torch dtype.
        accumulative_counts: micro-batches per optimizer step.
        clip_grad: as for :class:`OptimWrapper`; gradients are unscaled first.
        device_type: the autocast device type (``"cuda"``, ``"cpu"`` ...); ``None`` takes the
            device of the optimizer's first parameter.

    Example:
        >>> model = nn.Linear(4, 1)
        >>> wrapper = AmpOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
        ...                           dtype="bfloat16")
        >>> with wrapper.optim_context(model):
        ...     out = model(torch.randn(8, 4))
        >>> out.dtype
        torch.bfloat16
        >>> wrapper.update_params(out.float().pow(2).mean())
    """

    def __init__(self, optimizer: Optimizer,
                 loss_scale: str | float | Mapping[str, Any] = "dynamic",
                 dtype: str | torch.dtype | None = None, accumulative_counts: int = 1,
                 clip_grad: Mapping[str, Any] | None = None,
                 device_type: str | None = None) -> None:
        super().__init__(optimizer, accumulative_counts, clip_grad)
        self.device_type = _resolve_device_type(device_type, optimizer)
        self.cast_dtype = _resolve_dtype(dtype, self.device_type)
        self._static_scale: float | None = None
        self.loss_scaler = self._build_scaler(loss_scale)

    def _build_scaler(self, loss_scale: Any) -> torch.amp.GradScaler:
        scaler_kwargs: dict[str, Any]
        if isinstance(loss_scale, str):
            if loss_scale != "dynamic":
                raise ValueError(f"loss_scale must be 'dynamic', a positive float or a dict of "
                                 f"GradScaler arguments, got {loss_scale!r}")
            scaler_kwargs = {}
        elif is_number(loss_scale):
            if not loss_scale > 0:
                raise ValueError(f"loss_scale must be positive, got {loss_scale!r}")
            self._static_scale = float(loss_scale)
            scaler_kwargs = {"init_scale": float(loss_scale)}
        elif isinstance(loss_scale, Mapping):
            unknown = sorted(set(loss_scale) - _SCALER_KEYS)
            if unknown:
                raise ValueError(
                    f"loss_scale dict does not accept {unknown}; accepted keys are "
                    f"{sorted(_SCALER_KEYS)}"
                )
            scaler_kwargs = dict(loss_scale)
        else:
            raise TypeError(
                f"loss_scale must be 'dynamic', a positive float or a dict of GradScaler "
                f"arguments, got {loss_scale!r}"
            )
        enabled = self.cast_dtype == torch.float16
        if not enabled and loss_scale != "dynamic":
            warnings.warn(
                f"loss_scale={loss_scale!r} is ignored with dtype={self.cast_dtype}: only "
                "float16 needs loss scaling",
                UserWarning,
                stacklevel=3,
            )
        return _grad_scaler(self.device_type, enabled=enabled, **scaler_kwargs)

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Backpropagate the scaled loss and count one micro-batch."""
        self.loss_scaler.scale(loss).backward(**kwargs)
        self.inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Unscale and clip if configured, then step unless the gradients are not finite."""
        if self._clip is not None:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._static_scale)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """``no_sync`` while accumulating (see :class:`OptimWrapper`) plus ``torch.autocast``."""
        with super().optim_context(model), torch.autocast(self.device_type, self.cast_dtype):
            yield

    def state_dict(self) -> dict[str, Any]:
        """:meth:`OptimWrapper.state_dict` plus the scaler's state under ``loss_scaler``."""
        state = super().state_dict()
        state["loss_scaler"] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        state = dict(state_dict)
        scaler_state = state.pop("loss_scaler", None)
        if scaler_state and self.loss_scaler.is_enabled():
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state)

    def __repr__(self) -> str:
        return (f"{super().__repr__()[:-1]},\n  dtype={self.cast_dtype}, "
                f"device_type={self.device_type!r}, loss_scaler={self.loss_scaler.state_dict()})")


PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def to_precision(wrapper: OptimWrapper, precision: str,
                 device_type: str | None = None) -> OptimWrapper:
    """``wrapper`` for ``Trainer(precision=...)``; see :meth:`OptimWrapper.with_precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return wrapper
    if isinstance(wrapper, AmpOptimWrapper):
        if wrapper.cast_dtype != dtype:
            raise ValueError(
                f"precision={precision!r} conflicts with the AmpOptimWrapper's dtype "
                f"{wrapper.cast_dtype}; set only one of them"
            )
        return wrapper
    if type(wrapper) is not OptimWrapper:
        raise ValueError(
            f"precision={precision!r} cannot be added to a {type(wrapper).__name__}; use "
            "precision='32' and give the wrapper mixed precision itself"
        )
    amp = AmpOptimWrapper(wrapper.optimizer, dtype=dtype,
                          accumulative_counts=wrapper.accumulative_counts,
                          clip_grad=wrapper.clip_grad, device_type=device_type)
    amp.initialize_count_status(None, wrapper.inner_count, wrapper.max_counts)
    return amp


def _resolve_device_type(device_type: str | None, optimizer: Optimizer) -> str:
    if device_type is None:
        return optimizer.param_groups[0]["params"][0].device.type
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be a string such as 'cuda' or 'cpu', got "
                        f"{device_type!r}")
    is_available = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    try:
        available = device_type in ("cpu", "cuda") if is_available is None else is_available(
            device_type)
    except RuntimeError:
        available = False
    if not available:
        raise ValueError(f"device_type {device_type!r} does not support autocast; use 'cuda' "
                         "or 'cpu'")
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device_type='cuda' but CUDA is not available; use device_type='cpu' "
                         "with dtype='bfloat16'")
    return device_type


def _resolve_dtype(dtype: str | torch.dtype | None, device_type: str) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device_type == "cuda" else torch.bfloat16
    resolved = _DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, 'float16', 'bfloat16', torch.float16 or "
                         f"torch.bfloat16, got {dtype!r}")
    if resolved == torch.float16 and not float16_supported(device_type):
        warnings.warn(
            f"float16 autocast with loss scaling is not supported on {device_type!r} by torch "
            f"{torch.__version__}; falling back to bfloat16",
            UserWarning,
            stacklevel=3,
        )
        return torch.bfloat16
    return resolved


def float16_supported(device_type: str) -> bool:
    """Whether this torch can autocast to float16 and scale gradients on ``device_type``."""
    if device_type == "cuda":
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # old torch warns and disables unsupported dtypes
            with torch.autocast(device_type, torch.float16):
                enabled = torch.is_autocast_enabled(device_type)
                cast = torch.get_autocast_dtype(device_type)
            _grad_scaler(device_type)
    except (RuntimeError, UserWarning, TypeError, AttributeError):
        return False
    return enabled and cast == torch.float16


def _grad_scaler(device_type: str, **kwargs: Any) -> torch.amp.GradScaler:
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device_type, **kwargs)
    if device_type != "cuda" and kwargs.get("enabled", True):
        raise RuntimeError(f"torch {torch.__version__} has no GradScaler for {device_type!r}")
    return torch.cuda.amp.GradScaler(**kwargs)
