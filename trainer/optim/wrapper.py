"""``OptimWrapper``: the one object that owns the parameter update.

It keeps MMEngine's API (``update_params``, ``optim_context``, ``initialize_count_status`` ...)
so that ``train_step`` code written for MMEngine runs unchanged, and adds gradient
accumulation, gradient clipping and an exact, ``weights_only``-loadable state dict.
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from trainer.arguments import check_non_negative_int, check_positive_int, is_int
from trainer.optim.clip import parse_clip_grad


class _NoContext:
    """What ``optim_context`` returns when there is nothing to do, every iteration: a ``with``
    block over it costs about 220 fewer instructions than over ``contextlib.nullcontext``,
    whose ``__exit__`` takes ``*args`` (about 2,080 against 2,300)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        return None


_NULL_CONTEXT = _NoContext()
_LR = operator.itemgetter("lr")
# What ``update_params`` calls; while none is overridden (by a subclass, or on the instance, as
# MMEngine's tests do with mocks) it does their work itself: four calls fewer an iteration.
_UPDATE_STEPS = ("backward", "should_update", "step", "zero_grad")


class OptimWrapper:
    """Scale, backward, clip, step and zero the gradients of one optimizer.

    With ``accumulative_counts=n`` the optimizer steps once every ``n`` calls of
    :meth:`update_params` and each loss is divided by ``n``, so ``n`` micro-batches give the
    gradient of their mean. In the last window before ``max_counts`` (see
    :meth:`initialize_count_status`), which may be shorter, the loss is divided by its length.

    Args:
        optimizer: the torch optimizer to drive.
        accumulative_counts: micro-batches per optimizer step (an int, at least 1).
        clip_grad: ``None``, ``dict(max_norm=..., norm_type=2, error_if_nonfinite=False)`` to
            clip the total gradient norm, or ``dict(type="value", clip_value=...)`` to clamp each
            gradient element. With norm clipping the pre-clip total norm of the last step is kept
            in :attr:`grad_norm` as a tensor (no device sync).

    Example:
        >>> model = nn.Linear(4, 1)
        >>> wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
        ...                        accumulative_counts=2, clip_grad=dict(max_norm=1.0))
        >>> for _ in range(4):
        ...     with wrapper.optim_context(model):
        ...         loss = model(torch.randn(8, 4)).pow(2).mean()
        ...     wrapper.update_params(loss)
        >>> wrapper.inner_count
        4
    """

    def __init__(self, optimizer: Optimizer, accumulative_counts: int = 1,
                 clip_grad: Mapping[str, Any] | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                "build one first, e.g. torch.optim.SGD(model.parameters(), lr=0.1)"
            )
        check_positive_int("accumulative_counts", accumulative_counts)  # 1: step every batch
        self.optimizer = optimizer
        self._clip = parse_clip_grad(clip_grad)
        self.clip_grad = None if clip_grad is None else dict(clip_grad)
        self._accumulative_counts = accumulative_counts
        self.inner_count = 0
        self.grad_norm: torch.Tensor | None = None
        self._max_counts: int | None = None
        self._divisible_counts = 0
        self._remainder_counts = 0
        self._warned_batch_norm = False
        self._plain_update = accumulative_counts == 1 and self._clip is None and all(
            getattr(type(self), name) is getattr(OptimWrapper, name) for name in _UPDATE_STEPS)

    # -- the update --------------------------------------------------------------------------

    def update_params(self, loss: torch.Tensor, step_kwargs: dict[str, Any] | None = None,
                      zero_kwargs: dict[str, Any] | None = None) -> None:
        """Scale ``loss``, backpropagate it, and step + zero the gradients when a window closes."""
        if (self._plain_update and not (step_kwargs or zero_kwargs)
                and self.__dict__.keys().isdisjoint(_UPDATE_STEPS)):
            loss.backward()
            self.inner_count += 1
            self.optimizer.step()
            self.optimizer.zero_grad()
            return
        # Here and below, a call without keywords is made without ``**``: unpacking a dict
        # costs as much as three plain calls, several times an iteration.
        self.backward(self.scale_loss(loss) if self._accumulative_counts != 1 else loss)
        if self.should_update():
            if step_kwargs:
                self.step(**step_kwargs)
            else:
                self.step()
            if zero_kwargs:
                self.zero_grad(**zero_kwargs)
            else:
                self.zero_grad()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``loss.backward(**kwargs)`` and count one micro-batch."""
        if kwargs:
            loss.backward(**kwargs)
        else:
            loss.backward()
        self.inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Clip the gradients if configured, then ``optimizer.step(**kwargs)``."""
        if self._clip is not None:
            self._clip_grad()
        if kwargs:
            self.optimizer.step(**kwargs)
        else:
            self.optimizer.step()

    def zero_grad(self, **kwargs: Any) -> None:
        """``optimizer.zero_grad(**kwargs)``; torch's default sets the gradients to ``None``."""
        if kwargs:
            self.optimizer.zero_grad(**kwargs)
        else:
            self.optimizer.zero_grad()

    def _clip_grad(self) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        if not params:
            return
        kind, kwargs = self._clip  # type: ignore[misc]
        if kind == "norm":
            norm = nn.utils.clip_grad_norm_(params, **kwargs)
            # Sharded (DTensor) gradients: the norm is already global, held as a replicated DTensor
            self.grad_norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        else:
            nn.utils.clip_grad_value_(params, **kwargs)

    # -- accumulation bookkeeping ------------------------------------------------------------

    @property
    def accumulative_counts(self) -> int:
        return self._accumulative_counts

    @property
    def max_counts(self) -> int | None:
        """Length of the current counting domain, or ``None`` while unknown."""
        return self._max_counts

    def initialize_count_status(self, model: nn.Module | None, init_counts: int,
                                max_counts: int | None) -> None:
        """Start a counting domain: ``init_counts`` micro-batches of ``max_counts`` are done.

        The epoch-based loop calls this at the start of every epoch with
        ``(batches_done_in_epoch, len(loader))``; the iteration-based loop once with
        ``(iter, max_iters)``. ``max_counts=None`` (or MMEngine's ``-1``) means unknown: every
        window then has ``accumulative_counts`` micro-batches.
        """
        check_non_negative_int("init_counts", init_counts)
        if max_counts == -1:
            max_counts = None
        if max_counts is not None:
            if not is_int(max_counts) or max_counts < 1:
                raise ValueError(
                    f"max_counts must be a positive int, None or -1 (unknown), got {max_counts!r}"
                )
            if init_counts > max_counts:
                raise ValueError(
                    f"init_counts ({init_counts}) must not exceed max_counts ({max_counts})"
                )
        self.inner_count = init_counts
        self._max_counts = max_counts
        if max_counts is None:
            self._remainder_counts = 0
        else:
            self._remainder_counts = max_counts % self._accumulative_counts
            self._divisible_counts = max_counts - self._remainder_counts
        self._warn_batch_norm(model)

    def _warn_batch_norm(self, model: nn.Module | None) -> None:
        if self._accumulative_counts == 1 or self._warned_batch_norm:
            return
        if isinstance(model, nn.Module) and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
        ):
            self._warned_batch_norm = True
            warnings.warn(
                "Gradient accumulation with BatchNorm layers: their statistics see each "
                "micro-batch alone, so results differ from one large batch. Consider GroupNorm "
                "or LayerNorm.",
                UserWarning,
                stacklevel=3,
            )

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide ``loss`` by the length of the accumulation window it belongs to."""
        counts = self._accumulative_counts
        if counts == 1:
            return loss
        if self._remainder_counts and self.inner_count >= self._divisible_counts:
            counts = self._remainder_counts
        return loss / counts

    def should_update(self) -> bool:
        """Whether the last :meth:`backward` closed an accumulation window."""
        return (self.inner_count % self._accumulative_counts == 0
                or self.inner_count == self._max_counts)

    def should_sync(self) -> bool:
        """Whether the next backward closes a window, so DDP must all-reduce its gradients."""
        following = self.inner_count + 1
        return following % self._accumulative_counts == 0 or following == self._max_counts

    def optim_context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Context for the forward pass: ``model.no_sync()`` while accumulating under DDP; under
        FSDP the model is told whether this backward reduces its gradients."""
        if self._accumulative_counts == 1:
            return _NULL_CONTEXT
        if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce when a window closes
            model.set_requires_gradient_sync(self.should_sync())
        elif not self.should_sync() and hasattr(model, "no_sync"):
            return model.no_sync()
        return _NULL_CONTEXT

    def with_precision(self, precision: str, device_type: str | None = None) -> OptimWrapper:
        """This wrapper for ``Trainer(precision=...)``: itself for ``"32"``, else an
        :class:`AmpOptimWrapper` over the same optimizer, counts and clipping."""
        from trainer.optim.amp import to_precision  # amp builds on this module

        return to_precision(self, precision, device_type)

    # -- reading the optimizer ---------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """``{"lr": [lr of each param group]}``."""
        return {"lr": list(map(_LR, self.optimizer.param_groups))}  # read every iteration

    def get_momentum(self) -> dict[str, list[float]]:
        """``{"momentum": [...]}``: ``momentum``, else ``betas[0]`` (Adam-style), else 0."""
        momentum = []
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                momentum.append(group["momentum"])
            elif "betas" in group:
                momentum.append(group["betas"][0])
            else:
                momentum.append(0)
        return {"momentum": momentum}

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict plus ``inner_count`` and, inside an accumulation window,
        ``accumulated_grads`` (a copy of each parameter's gradient, in param-group order), so a
        resume there continues exactly. Plain containers only: ``torch.load(weights_only=True)``
        reads it."""
        state = self.optimizer.state_dict()
        state["inner_count"] = self.inner_count
        if not self.should_update():
            state["accumulated_grads"] = [
                None if p.grad is None else p.grad.detach().clone() for p in self._params()
            ]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load what :meth:`state_dict` wrote, or a plain torch/MMEngine optimizer state dict."""
        state = dict(state_dict)
        inner_count = state.pop("inner_count", None)
        grads = state.pop("accumulated_grads", None)
        self.optimizer.load_state_dict(state)
        if inner_count is None:  # a plain optimizer state dict: leave counter and grads alone
            return
        self.inner_count = int(inner_count)
        params = self._params()
        if grads is None:
            grads = [None] * len(params)
        if len(grads) != len(params):
            raise ValueError(
                f"accumulated_grads holds {len(grads)} gradients but the optimizer has "
                f"{len(params)} parameters; the state dict belongs to a different model"
            )
        for param, grad in zip(params, grads, strict=True):
            param.grad = None if grad is None else grad.to(param.device, param.dtype).clone()

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(accumulative_counts={self._accumulative_counts}, "
                f"clip_grad={self.clip_grad!r},\n  optimizer={self.optimizer!r})")
