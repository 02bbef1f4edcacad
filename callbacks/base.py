"""The ``Callback`` base: MMEngine's hook points, priorities and interval predicates."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from trainer.arguments import is_int

if TYPE_CHECKING:
    from trainer.trainer import Trainer

TRAIN_HOOKS = (
    "before_train", "after_train", "before_train_epoch", "after_train_epoch",
    "before_train_iter", "after_train_iter",
)
EVAL_HOOKS = tuple(
    f"{when}_{stage}{part}"
    for stage in ("val", "test")
    for when in ("before", "after")
    for part in ("", "_epoch", "_iter")
)
HOOK_NAMES: tuple[str, ...] = (
    "before_run", "after_run", *TRAIN_HOOKS, *EVAL_HOOKS,
    "before_save_checkpoint", "after_load_checkpoint",
)

PRIORITIES: dict[str, int] = {
    "HIGHEST": 0, "VERY_HIGH": 10, "HIGH": 30, "ABOVE_NORMAL": 40, "NORMAL": 50,
    "BELOW_NORMAL": 60, "LOW": 70, "VERY_LOW": 90, "LOWEST": 100,
}


def get_priority(priority: int | str) -> int:
    """Turn an MMEngine priority name or an int in [0, 100] into its number."""
    if isinstance(priority, str):
        if priority.upper() not in PRIORITIES:
            raise ValueError(f"priority {priority!r} is not one of {list(PRIORITIES)}")
        return PRIORITIES[priority.upper()]
    if not is_int(priority) or not 0 <= priority <= 100:
        raise ValueError(f"priority must be an int in [0, 100] or a name, got {priority!r}")
    return priority


def next_multiple(every: int, at_least: int) -> int:
    """The first multiple of ``every`` that is ``at_least`` or more: where a callback that acts
    every ``every`` iterations next acts (for its ``skippable_train_iters``)."""
    return -(-at_least // every) * every


def accept_runner_keyword(hook: Callable) -> Callable:
    """Let ``hook`` take the trainer as ``runner=`` (MMEngine's name) or ``trainer=`` too.

    MMEngine hooks call their parents as ``super().after_train_epoch(runner=runner)``; every
    hook method of a ``Callback`` subclass is wrapped with this when the class is defined.
    """
    if getattr(hook, "_accepts_runner", False):
        return hook

    @functools.wraps(hook)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not args:
            if "runner" in kwargs:
                args = (kwargs.pop("runner"),)
            elif "trainer" in kwargs:
                args = (kwargs.pop("trainer"),)
        return hook(self, *args, **kwargs)

    call._accepts_runner = True  # type: ignore[attr-defined]
    return call


class Callback:
    """Base class of everything that hooks into a run; override the hook points you need.

    Every hook takes the trainer first and the rest as keywords (``batch_idx``, ``data_batch``,
    ``outputs``, ``metrics``, ``checkpoint``), with MMEngine's names and meanings, so an MMEngine
    ``Hook`` ports by changing its imports: the trainer offers what MMEngine's ``Runner`` offers
    a hook, and the first argument may be passed as ``runner=`` or ``trainer=``.

    Args:
        priority: an int in [0, 100] or a name from ``PRIORITIES``; lower runs first.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from trainer import Trainer
        >>> from trainer.datasets import digits_splits
        >>> from trainer.demo import DigitsNet
        >>> class EveryTen(Callback):
        ...     def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        ...         if self.every_n_train_iters(trainer, 10):
        ...             print("iteration", trainer.iter + 1, "logged", sorted(outputs))
        >>> trainer = Trainer(max_iters=20, work_dir="work_dirs/every_ten", callbacks=[EveryTen()],
        ...                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        ...                   default_callbacks={"progress": None, "logger": None})
        >>> _ = trainer.fit(DigitsNet(), DataLoader(digits_splits()[0], batch_size=32))
        iteration 10 logged ['loss']
        iteration 20 logged ['loss']
    """

    priority: int | str = "NORMAL"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in HOOK_NAMES:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method):  # plain methods; static/class methods stay as they are
                setattr(cls, name, accept_runner_keyword(method))

    def __init__(self, priority: int | str | None = None) -> None:
        if priority is not None:
            self.priority = priority

    def before_run(self, trainer: Trainer) -> None: ...
    def after_run(self, trainer: Trainer) -> None: ...
    def before_train(self, trainer: Trainer) -> None: ...
    def after_train(self, trainer: Trainer) -> None: ...
    def before_train_epoch(self, trainer: Trainer) -> None: ...
    def after_train_epoch(self, trainer: Trainer) -> None: ...

    def before_train_iter(self, trainer: Trainer, batch_idx: int, data_batch: Any = None) -> None:
        ...

    def after_train_iter(self, trainer: Trainer, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None: ...

    def before_val(self, trainer: Trainer) -> None: ...
    def after_val(self, trainer: Trainer) -> None: ...
    def before_val_epoch(self, trainer: Trainer) -> None: ...

    def after_val_epoch(self, trainer: Trainer, metrics: dict[str, Any] | None = None) -> None:
        ...

    def before_val_iter(self, trainer: Trainer, batch_idx: int, data_batch: Any = None) -> None:
        ...

    def after_val_iter(self, trainer: Trainer, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None: ...

    # The test loop's hook points take what the validation loop's take.
    before_test, after_test, before_test_epoch = before_val, after_val, before_val_epoch
    after_test_epoch, before_test_iter, after_test_iter = (
        after_val_epoch, before_val_iter, after_val_iter)

    def before_save_checkpoint(self, trainer: Trainer, checkpoint: dict) -> None: ...
    def after_load_checkpoint(self, trainer: Trainer, checkpoint: dict) -> None: ...

    @property
    def monitored_metrics(self) -> Sequence[str]:
        """Validation metric names this callback reads (``"accuracy"``); ``fit``'s sanity pass
        checks them against what the evaluator returns before the first training iteration."""
        return ()

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to continue after a resume; saved in every checkpoint."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    # MMEngine's predicates, so ported hooks keep their interval logic.
    @staticmethod
    def every_n_train_iters(trainer: Trainer, n: int, start: int = 0) -> bool:
        done = trainer.iter + 1 - start
        return n > 0 and done > 0 and done % n == 0

    @staticmethod
    def every_n_epochs(trainer: Trainer, n: int, start: int = 0) -> bool:
        done = trainer.epoch + 1 - start
        return n > 0 and done > 0 and done % n == 0

    @staticmethod
    def every_n_inner_iters(batch_idx: int, n: int) -> bool:
        return n > 0 and (batch_idx + 1) % n == 0

    @staticmethod
    def is_last_train_iter(trainer: Trainer) -> bool:
        return trainer.iter + 1 == trainer.max_iters

    @staticmethod
    def is_last_train_epoch(trainer: Trainer) -> bool:
        return trainer.epoch + 1 == trainer.max_epochs

    @staticmethod
    def end_of_epoch(dataloader: Any, batch_idx: int) -> bool:
        return batch_idx + 1 == len(dataloader)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(priority={self.priority!r})"


for _name in HOOK_NAMES:
    setattr(Callback, _name, accept_runner_keyword(getattr(Callback, _name)))
del _name
