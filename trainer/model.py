"""``BaseModel``: the contract between a user's network and the loops (MMEngine's ``BaseModel``)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from trainer.optim import OptimWrapper

MODES = ("tensor", "loss", "predict")


class BaseDataPreprocessor(nn.Module):
    """Moves a (nested) batch to the model's device; subclass it to normalise or augment.

    It follows the model through ``.to()``/``.cuda()`` by a non-persistent buffer, so it never
    has to be told where the model lives. A flat batch (a tuple, list or dict of tensors, what a
    ``DataLoader`` usually yields) is moved without walking its structure again once the first
    batch has shown it; anything else is walked every time.

    Args:
        non_blocking: passed to ``Tensor.to``; ``None`` (default) copies asynchronously when the
            batch is in pinned memory (a loader with ``pin_memory=True``), so the copy overlaps
            with the previous step's GPU work.

    Example:
        >>> class Normalise(BaseDataPreprocessor):
        ...     def forward(self, data, training=False):
        ...         x, y = self.cast_data(data)
        ...         return (x - x.mean()) / x.std(), y
        >>> x, y = Normalise()((torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 1, 0])))
        >>> x.tolist(), y.tolist()
        ([-1.0, 0.0, 1.0], [0, 1, 0])
    """

    def __init__(self, non_blocking: bool | None = None) -> None:
        super().__init__()
        self.non_blocking = non_blocking
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._device = self._device_anchor.device
        self._flat: tuple[type, int, bool] | None = None  # (batch type, length, non_blocking)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> BaseDataPreprocessor:
        module = super()._apply(fn, *args, **kwargs)
        self._device = self._device_anchor.device  # read once here, not per batch
        return module

    @property
    def device(self) -> torch.device:
        return self._device

    def cast_data(self, data: Any) -> Any:
        device = self._device
        if device.type == "cpu":
            return data  # loaders yield CPU tensors: nothing to move, and no per-batch cost
        flat = self._flat
        if flat is not None and type(data) is flat[0] and len(data) == flat[1]:
            try:
                return _move_flat(data, device, flat[2])
            except AttributeError:  # not the structure of the first batch after all
                self._flat = None
        if self._flat is None and _is_flat(data):
            first = next(iter(data.values() if isinstance(data, dict) else data))
            pinned = first.is_pinned() if self.non_blocking is None else self.non_blocking
            self._flat = (type(data), len(data), pinned)
            return _move_flat(data, device, pinned)
        from lightning_utilities.core.apply_func import apply_to_collection  # nested batches

        non_blocking = bool(self.non_blocking)
        return apply_to_collection(
            data, torch.Tensor, lambda t: t.to(device, non_blocking=non_blocking))

    def forward(self, data: Any, training: bool = False) -> Any:
        return self.cast_data(data)


def _is_flat(data: Any) -> bool:
    """A non-empty tuple, list or dict whose values are all tensors."""
    values = data.values() if type(data) is dict else data if type(data) in (tuple, list) else ()
    return len(values) > 0 and all(type(v) is torch.Tensor for v in values)


def _move_flat(data: Any, device: torch.device, non_blocking: bool) -> Any:
    if type(data) is dict:
        return {k: v.to(device, non_blocking=non_blocking) for k, v in data.items()}
    return type(data)(v.to(device, non_blocking=non_blocking) for v in data)


def preprocess(model: nn.Module, data: Any, training: bool) -> Any:
    """``model.data_preprocessor(data, training)``, or ``data`` itself when the call would hand
    it back unchanged: the base class itself on the CPU, with no hooks. On a small model the
    module call (and ``nn.Module.__getattr__``) costs a visible share of an iteration."""
    preprocessor = model._modules.get("data_preprocessor")
    if preprocessor is None:  # not a submodule (a property, say): the ordinary lookup
        preprocessor = model.data_preprocessor
    if (type(preprocessor) is BaseDataPreprocessor and preprocessor._device.type == "cpu"
            and not (preprocessor._forward_pre_hooks or preprocessor._forward_hooks)):
        return data
    return preprocessor(data, training)


def run_forward(module: nn.Module, data: Any, mode: str) -> Any:
    """Call ``module`` on a batch: a dict as keywords, a list or tuple as positional arguments."""
    try:
        if isinstance(data, dict):
            return module(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return module(*data, mode=mode)
        return module(data, mode=mode)
    except TypeError as err:
        mismatch = batch_mismatch(module, data, mode)
        if mismatch:
            raise TypeError(mismatch) from err
        raise


def batch_mismatch(module: nn.Module, data: Any, mode: str) -> str:
    """Why ``forward`` cannot take this batch, or ``""`` when it can (the error was elsewhere).

    Only called after a ``TypeError``, so a batch costs no signature inspection.
    """
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return ""
    args, kwargs = ((), dict(data)) if isinstance(data, dict) else (
        (tuple(data), {}) if isinstance(data, (list, tuple)) else ((data,), {}))
    try:
        signature.bind(*args, **kwargs, mode=mode)
    except TypeError as err:
        name = f"{type(module).__name__}.forward{signature}"
        if isinstance(data, dict):
            return (f"a dict batch is passed to forward as keyword arguments: keys "
                    f"{sorted(data)} + mode, but {name} ({err}). Rename the keys (in the "
                    "data set, or a data_preprocessor) to forward's parameter names, or name "
                    "forward's parameters after the keys")
        kind = (f"a list/tuple batch is passed as {len(args)} positional arguments"
                if isinstance(data, (list, tuple)) else
                "a batch that is neither a dict nor a list/tuple is passed as one argument")
        return f"{kind} + mode, but {name} ({err})"
    return ""


class BaseModel(nn.Module):
    """A network that knows how to compute its loss and its predictions.

    Subclasses implement ``forward(*inputs, mode)``: ``"loss"`` returns a dict of losses (every
    value whose key contains ``"loss"`` is summed into the total), ``"predict"`` returns what the
    evaluator consumes (``(preds, target)`` or a dict), ``"tensor"`` the raw output. Override
    ``train_step`` for GANs or several optimizers.

    Args:
        data_preprocessor: moves and prepares each batch; defaults to ``BaseDataPreprocessor``.

    Example:
        >>> class Net(BaseModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(8, 3)
        ...     def forward(self, x, y=None, mode="tensor"):
        ...         logits = self.fc(x)
        ...         if mode == "loss":
        ...             return {"loss": nn.functional.cross_entropy(logits, y)}
        ...         return (logits.argmax(1), y) if mode == "predict" else logits
        >>> from trainer.optim import OptimWrapper
        >>> net = Net()
        >>> x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> log_vars = net.train_step((x, y), OptimWrapper(torch.optim.SGD(net.parameters(), lr=0.1)))
        >>> sorted(log_vars), log_vars["loss"].requires_grad
        (['loss'], False)
        >>> preds, target = net.val_step((x, y))
        >>> preds.shape, target is y
        (torch.Size([4]), True)
    """

    def __init__(self, data_preprocessor: nn.Module | None = None) -> None:
        super().__init__()
        self.data_preprocessor = data_preprocessor or BaseDataPreprocessor()

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """One optimisation step on ``data``; returns the detached log variables."""
        with optim_wrapper.optim_context(self):
            data = preprocess(self, data, True)
            losses = self._run_forward(data, mode="loss")
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: Any) -> Any:
        return self._run_forward(preprocess(self, data, False), mode="predict")

    def test_step(self, data: Any) -> Any:
        return self._run_forward(preprocess(self, data, False), mode="predict")

    def predict_step(self, data: Any) -> Any:
        """What ``Trainer.predict`` collects per batch; the test step unless overridden."""
        return self.test_step(data)

    def configure_optimizers(self) -> Any:
        """Optional: an optimizer, or ``(optimizer, schedulers)``, used without ``optim_wrapper``."""
        return None

    _run_forward = run_forward  # MMEngine's method name: (self, data, mode)

    def parse_losses(self, losses: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum every value whose key contains ``"loss"``; return it and the detached log dict."""
        if type(losses) is dict and len(losses) == 1:  # the usual {"loss": tensor}, checked fast
            value = losses.get("loss")
            if type(value) is torch.Tensor and value.ndim == 0 and value.requires_grad:
                return value, {"loss": value.detach()}
        if not isinstance(losses, dict):
            raise TypeError(
                f"{type(self).__name__}.forward(mode='loss') must return a dict such as "
                f"{{'loss': tensor}}, got {type(losses).__name__}")
        log_vars: dict[str, torch.Tensor] = {}
        terms: list[torch.Tensor] = []
        for key, value in losses.items():
            if isinstance(value, (list, tuple)):
                value = sum(_check_scalar(key, v) for v in value)
            if "loss" in key:
                terms.append(_check_scalar(key, value))
            log_vars[key] = value.detach() if isinstance(value, torch.Tensor) else value
        if not terms:
            raise ValueError(
                f"{type(self).__name__}.forward(mode='loss') returned keys {list(losses)} but no "
                "key contains 'loss'; return e.g. {'loss': cross_entropy(logits, y)}")
        total = terms[0] if len(terms) == 1 else torch.stack(terms).sum()
        if not total.requires_grad:
            raise ValueError(
                "the loss does not require grad: was it computed under torch.no_grad() or "
                "detached inside forward(mode='loss')?")
        if len(terms) > 1 or "loss" not in log_vars:
            log_vars["loss"] = total.detach()
        return total, log_vars


_TWO_WAYS = """Write the model in one of two ways:
  1. forward(self, x, y=None, mode="tensor"): return {"loss": loss} when mode == "loss" and
     (preds, target) when mode == "predict"; the default train_step/val_step call it;
  2. keep your own step methods: override train_step(self, data, optim_wrapper) (compute the
     loss, call optim_wrapper.update_params(loss), return {"loss": loss.detach()}) and
     val_step(self, data) (return what the evaluator takes)."""


def check_model(model: nn.Module) -> None:
    """Refuse a model whose default steps would call a ``forward`` that takes no ``mode``."""
    cls = type(model)
    defaults = [name for name in ("train_step", "val_step")
                if getattr(cls, name, None) is getattr(BaseModel, name)]
    if not defaults:
        return
    forward = cls.forward
    if forward is nn.Module.forward:
        problem = "has no forward()"
    else:
        try:
            parameters = inspect.signature(forward).parameters.values()
        except (TypeError, ValueError):
            return
        if any(p.name == "mode" or p.kind is p.VAR_KEYWORD for p in parameters):
            return
        problem = "has a forward() without a mode parameter"
    lightning = (" and defines training_step (Lightning's name, never called here)"
                 if hasattr(cls, "training_step") else "")
    raise TypeError(f"{cls.__name__} {problem}{lightning}, but the default "
                    f"{' and '.join(defaults)} call forward(..., mode=...). {_TWO_WAYS}")


def check_train_step(model: nn.Module, optim_wrapper: Any) -> None:
    """Several optimizers need the model's own ``train_step``: the default updates one."""
    from trainer.optim import OptimWrapperDict

    if isinstance(optim_wrapper, OptimWrapperDict) and type(model).train_step is \
            BaseModel.train_step:
        raise TypeError(
            f"{type(model).__name__} has several optimizers ({list(optim_wrapper.keys())}) but "
            "uses the default train_step, which updates one: override train_step(self, data, "
            "optim_wrapper) and call optim_wrapper[name].update_params(loss) for each (see "
            "docs/model.md, 'Several optimizers')")


def _check_scalar(key: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"loss {key!r} must be a scalar tensor, got {shape}; reduce it, e.g. with .mean()")
    return value
