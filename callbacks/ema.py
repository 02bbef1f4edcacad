"""An exponential moving average of the weights, evaluated instead of them and checkpointed."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from trainer.callbacks.base import Callback

from trainer.arguments import check_non_negative_int, check_positive_int, is_number
from trainer.compat.wrappers import unwrap_model

AVERAGES = ("ExponentialMovingAverage", "MomentumAnnealingEMA", "StochasticWeightAverage")


class EMACallback(Callback):
    """MMEngine's ``EMAHook``: keep an average of the weights, validate and test with it.

    After every ``interval``-th iteration (from ``begin_iter``/``begin_epoch`` on) the average
    moves towards the weights; the first update copies them. With MMEngine's momentum
    convention (the weight of the *new* value, the opposite of torch's ``decay``)::

        average = (1 - momentum) * average + momentum * weights

    ``MomentumAnnealingEMA`` uses ``max(momentum, gamma / (gamma + steps))`` instead, and
    ``StochasticWeightAverage`` the plain mean of every update's weights. Before averaging begins
    the average simply follows the weights.

    The averaged weights replace the model's for each validation and test pass
    (``before_val_epoch`` … ``after_val_epoch``), so metrics, ``save_best`` and early stopping
    judge the average; training always continues from the raw weights. Checkpoints keep the raw
    weights in ``state_dict`` and add the average as ``ema_state_dict`` (same keys); a resume
    restores both and the update count. MMEngine's ``EMAHook`` stores them the other way round:
    ``trainer.compat.ema.convert_ema_checkpoint`` (``python -m trainer convert-ema``) converts.

    Subclasses written for MMEngine's ``EMAHook`` find its names: ``ema_model`` (the averaged
    copy of the model itself, where MMEngine has ``ema_model.module``), ``src_model``,
    ``_swap_ema_parameters()``, ``_swap_ema_state_dict(checkpoint)`` and
    ``_ema_started(runner)``.

    Args:
        momentum: in (0, 1); MMEngine's default ``0.0002`` averages over about 5,000 updates.
        interval: update every this many iterations.
        begin_iter: first iteration (counted from 1, as MMEngine) that updates the average.
        begin_epoch: first epoch (counted from 1) that updates it; exclusive with ``begin_iter``.
        update_buffers: average the buffers (e.g. BatchNorm statistics) too; by default the
            model's own buffers are used with the averaged parameters.
        ema_type: ``"ExponentialMovingAverage"``, ``"MomentumAnnealingEMA"`` or
            ``"StochasticWeightAverage"`` (MMEngine's averaged-model names).
        gamma: ``MomentumAnnealingEMA``'s annealing constant.
        device: where to keep the average (``"cpu"`` saves accelerator memory); by default next
            to the weights.
        strict_load: refuse an ``ema_state_dict`` whose keys differ from the model's.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from trainer import Trainer
        >>> from trainer.checkpoint import load_checkpoint
        >>> from trainer.datasets import digits_splits
        >>> from trainer.demo import DigitsNet
        >>> trainer = Trainer(max_iters=4, work_dir="work_dirs/ema",
        ...                   callbacks=[EMACallback(momentum=0.5)],  # or dict(type="EMAHook")
        ...                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        ...                   default_callbacks={"progress": None, "logger": None})
        >>> _ = trainer.fit(DigitsNet(), DataLoader(digits_splits()[0], batch_size=32))
        >>> ckpt = load_checkpoint("work_dirs/ema/iter_4.pth")
        >>> ckpt["ema_state_dict"].keys() == ckpt["state_dict"].keys()
        True
        >>> torch.equal(ckpt["ema_state_dict"]["body.0.weight"], ckpt["state_dict"]["body.0.weight"])
        False
    """

    priority = "NORMAL"

    def __init__(self, momentum: float = 0.0002, interval: int = 1, begin_iter: int = 0,
                 begin_epoch: int = 0, update_buffers: bool = False,
                 ema_type: str = "ExponentialMovingAverage", gamma: float = 100,
                 device: str | torch.device | None = None, strict_load: bool = False,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        if not is_number(momentum) or not 0.0 < momentum < 1.0:
            raise ValueError(f"EMACallback momentum must be in (0, 1), got {momentum!r}")
        check_positive_int("EMACallback interval", interval)
        check_non_negative_int("EMACallback begin_iter", begin_iter)
        check_non_negative_int("EMACallback begin_epoch", begin_epoch)
        if begin_iter and begin_epoch:
            raise ValueError(f"EMACallback takes begin_iter or begin_epoch, not both (got "
                             f"begin_iter={begin_iter}, begin_epoch={begin_epoch})")
        if ema_type not in AVERAGES:
            raise ValueError(f"ema_type must be one of {AVERAGES}, got {ema_type!r}")
        if not gamma > 0:
            raise ValueError(f"EMACallback gamma must be positive, got {gamma!r}")
        self.momentum, self.interval, self.gamma = float(momentum), interval, gamma
        self.begin_iter, self.begin_epoch = begin_iter, begin_epoch
        self.update_buffers, self.ema_type = update_buffers, ema_type
        self.device = None if device is None else torch.device(device)
        self.strict_load = strict_load
        self.ema_model: nn.Module | None = None
        self.steps = 0  # updates made (MMEngine's ``steps``), the first one copies the weights
        self._source: nn.Module | None = None
        self._loaded = False  # the average came from a checkpoint and is valid as it is
        self._swapped = False
        self._pending: dict[str, torch.Tensor] | None = None

    # Pairs of (average, weight) tensors.
    def _pairs(self, with_buffers: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        average, source = [], []
        items = [(self.ema_model.named_parameters(), self._source.named_parameters())]
        if with_buffers:
            items.append((self.ema_model.named_buffers(), self._source.named_buffers()))
        for avg_items, src_items in items:
            for (name, avg), (src_name, src) in zip(avg_items, src_items):
                if name != src_name:
                    raise RuntimeError(f"EMACallback: the model's {src_name!r} does not match "
                                       f"the average's {name!r}; was the model changed?")
                average.append(avg.detach())
                source.append(src.detach())
        return average, source

    @property
    def following(self) -> bool:
        """Averaging has not begun: the average is the current weights."""
        return self.steps == 0 and not self._loaded

    # Hooks.
    def before_run(self, trainer: Any) -> None:
        model = unwrap_model(trainer.model)
        if self.ema_model is None or self._source is not model:
            self._source = model
            self.ema_model = copy.deepcopy(model).requires_grad_(False).eval()
            if self.device is not None:
                self.ema_model.to(self.device)
            self.steps, self._loaded = 0, False
        if self._pending is not None:
            self._load_average(self._pending)
            self._pending = None
        average, source = self._pairs(self.update_buffers)
        floats = [i for i, t in enumerate(average) if t.is_floating_point()]
        self._avg = [average[i] for i in floats]
        self._src = [source[i] for i in floats]
        self._other = [(a, s) for i, (a, s) in enumerate(zip(average, source)) if i not in floats]

    def before_train(self, trainer: Any) -> None:
        if self.begin_epoch and trainer.max_epochs is not None \
                and self.begin_epoch > trainer.max_epochs:
            raise ValueError(f"EMACallback begin_epoch={self.begin_epoch} is after the last "
                             f"epoch (max_epochs={trainer.max_epochs})")
        if self.begin_iter > trainer.max_iters:
            raise ValueError(f"EMACallback begin_iter={self.begin_iter} is after the last "
                             f"iteration (max_iters={trainer.max_iters})")

    def after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if self._ema_started(trainer):
            self.update()

    def _ema_started(self, runner: Any) -> bool:
        """Whether averaging has begun at the current iteration or epoch (MMEngine's name)."""
        return (runner.epoch + 1 >= self.begin_epoch if self.begin_epoch
                else runner.iter + 1 >= self.begin_iter)

    @property
    def src_model(self) -> nn.Module | None:
        """The model being averaged (MMEngine's name)."""
        return self._source

    def after_train(self, trainer: Any) -> None:
        if self.following:
            self._copy_weights()  # so ema_model is the average after fit, whatever happened

    def _swap_in(self, trainer: Any) -> None:
        if self.ema_model is not None and not self._swapped:
            self._swap_ema_parameters()

    def _swap_out(self, trainer: Any, metrics: dict | None = None) -> None:
        if self._swapped:
            self._swap_ema_parameters()

    before_val_epoch = before_test_epoch = _swap_in  # type: ignore[assignment]
    after_val_epoch = after_test_epoch = _swap_out  # type: ignore[assignment]

    def before_save_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        if self.ema_model is None:
            return
        weights = checkpoint["state_dict"]
        own = {name: t.detach() for name, t in self.ema_model.state_dict().items()}
        source = self._source.state_dict()
        params = {name for name, _ in self.ema_model.named_parameters()}
        average = {}
        for name, tensor in own.items():
            key = name if name in weights else f"module.{name}"
            is_param_or_avg_buffer = self.update_buffers or name in params
            if self._swapped and is_param_or_avg_buffer:
                average[key] = source[name].detach().clone()  # the model holds the average
                weights[key] = tensor.clone()  # and the average's copy the raw weights
            elif self.following or not is_param_or_avg_buffer:
                average[key] = source[name].detach().clone()
            else:
                average[key] = tensor
        checkpoint["ema_state_dict"] = average

    def after_load_checkpoint(self, trainer: Any, checkpoint: dict) -> None:
        state = checkpoint.get("ema_state_dict")
        if state is None:  # MMEngine: without an average, it starts from the loaded weights
            self._loaded = False
            return
        if self.ema_model is None:
            self._pending = state  # loaded before before_run (a standalone test/validate)
        else:
            self._load_average(state)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = int(state_dict.get("steps", 0))

    # The averaging itself.
    @torch.no_grad()
    def update(self) -> None:
        """One update of the average from the current weights (counts towards ``interval``)."""
        if self.steps % self.interval == 0:
            source = self._src
            if self.device is not None:
                source = [t.to(self.device) for t in source]
            if self.steps == 0:
                torch._foreach_copy_(self._avg, source)
            elif self.ema_type == "StochasticWeightAverage":
                torch._foreach_lerp_(self._avg, source, 1.0 / (self.steps // self.interval + 1))
            else:
                momentum = self.momentum
                if self.ema_type == "MomentumAnnealingEMA":
                    momentum = max(momentum, self.gamma / (self.gamma + self.steps))
                torch._foreach_mul_(self._avg, 1.0 - momentum)
                torch._foreach_add_(self._avg, source, alpha=momentum)
            for avg, src in self._other:
                avg.copy_(src)
        self.steps += 1
        self._loaded = False

    @torch.no_grad()
    def _copy_weights(self) -> None:
        for avg, src in zip(*self._pairs(with_buffers=True)):
            avg.copy_(src)

    @torch.no_grad()
    def _swap_ema_parameters(self) -> None:
        """Exchange the model's weights and the average (MMEngine's name); twice undoes it."""
        if self.following:
            self._copy_weights()
        for avg, src in zip(*self._pairs(self.update_buffers)):
            held = avg.clone()
            avg.copy_(src)
            src.copy_(held)
        self._swapped = not self._swapped

    @staticmethod
    def _swap_ema_state_dict(checkpoint: dict) -> None:
        """Exchange ``state_dict`` and ``ema_state_dict`` of a checkpoint in place: this
        library's layout to MMEngine's and back (see ``trainer.compat.ema``)."""
        from trainer.compat.ema import swap_ema_state_dict

        swap_ema_state_dict(checkpoint)

    @torch.no_grad()
    def _load_average(self, state: dict[str, torch.Tensor]) -> None:
        own = self.ema_model.state_dict()
        plain = {k[7:] if k not in own and k.startswith("module.") else k: v
                 for k, v in state.items()}
        missing, unexpected = set(own) - set(plain), set(plain) - set(own)
        if self.strict_load and (missing or unexpected):
            raise ValueError(f"ema_state_dict does not match the model: missing "
                             f"{sorted(missing)}, unexpected {sorted(unexpected)} "
                             "(strict_load=True)")
        for name in own.keys() & plain.keys():
            own[name].copy_(plain[name])
        self._loaded = True
