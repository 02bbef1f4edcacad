"""Learning rate, momentum and weight decay of every parameter group, as logged scalars."""

from __future__ import annotations

from typing import Any

from trainer.callbacks.base import Callback


def named_param_groups(optim_wrapper: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(prefix, param_groups)]``: one entry, or one per optimizer of an OptimWrapperDict."""
    wrappers = getattr(optim_wrapper, "optim_wrappers", None)
    if wrappers is None:
        return [("", optim_wrapper.param_groups)]
    return [(f"{name}.", wrapper.param_groups) for name, wrapper in wrappers.items()]


def group_momentum(group: dict[str, Any]) -> float | None:
    """SGD's ``momentum``, or ``betas[0]`` for Adam-style optimizers; ``None`` when neither."""
    if "momentum" in group:
        return group["momentum"]
    if "betas" in group:
        return group["betas"][0]
    return None


class LRMonitorCallback(Callback):
    """Put each parameter group's learning rate (and momentum) into the message hub.

    Before every training iteration the values that iteration uses are stored as
    ``train/lr/pg0``, ``train/momentum/pg0``, ``train/lr/pg1``, ... (with an ``OptimWrapperDict``
    as ``train/<name>.lr/pg0``), so ``LoggerCallback`` prints them, writes them to
    ``scalars.jsonl`` and ``TensorBoardCallback`` plots them. Reading them costs no device sync.

    Args:
        log_momentum: also record the momentum (``betas[0]`` for Adam-style optimizers).
        log_weight_decay: also record ``train/weight_decay/pg<i>``.

    Example:
        >>> LRMonitorCallback(log_weight_decay=True)
        LRMonitorCallback(priority='VERY_HIGH')
    """

    priority = "VERY_HIGH"

    def __init__(self, log_momentum: bool = True, log_weight_decay: bool = False,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay

    def before_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any = None) -> None:
        update = trainer.message_hub.update_scalar
        for prefix, groups in named_param_groups(trainer.optim_wrapper):
            for i, group in enumerate(groups):
                update(f"train/{prefix}lr/pg{i}", group["lr"])
                if self.log_momentum:
                    momentum = group_momentum(group)
                    if momentum is not None:
                        update(f"train/{prefix}momentum/pg{i}", momentum)
                if self.log_weight_decay and "weight_decay" in group:
                    update(f"train/{prefix}weight_decay/pg{i}", group["weight_decay"])
