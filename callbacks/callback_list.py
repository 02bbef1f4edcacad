"""Ordered dispatch of hook calls to callbacks, with the checks done once at registration."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from trainer.callbacks.base import HOOK_NAMES, Callback, get_priority

HOOK_PREFIXES = ("before_", "after_", "on_")
_ITER_KWARGS = ("batch_idx", "data_batch")


def hook_keywords(hook: str) -> tuple[str, ...]:
    """The keyword arguments the trainer passes to ``hook``."""
    if hook.endswith("_iter"):
        return (*_ITER_KWARGS, "outputs") if hook.startswith("after_") else _ITER_KWARGS
    if hook in ("after_val_epoch", "after_test_epoch"):
        return ("metrics",)
    if hook.endswith("_checkpoint"):
        return ("checkpoint",)
    return ()


def check_callback(callback: Callback) -> None:
    """Refuse misspelt hook names and hook methods that cannot take the trainer's arguments."""
    if not isinstance(callback, Callback):
        raise TypeError(
            f"callbacks must be Callback instances, got {type(callback).__name__}; "
            "subclass callbacks.Callback"
        )
    get_priority(callback.priority)
    for name in dir(type(callback)):
        if name.startswith(HOOK_PREFIXES) and name not in HOOK_NAMES:
            raise ValueError(
                f"{type(callback).__name__}.{name} looks like a hook but is not one; "
                f"valid hook names are: {', '.join(HOOK_NAMES)}"
            )
    for hook in HOOK_NAMES:
        method = getattr(callback, hook)
        try:
            inspect.signature(method).bind(None, **dict.fromkeys(hook_keywords(hook)))
        except TypeError as err:
            raise TypeError(
                f"{type(callback).__name__}.{hook} must accept (trainer"
                f"{''.join(', ' + k for k in hook_keywords(hook))}): {err}"
            ) from None


def direct_method(callback: Callback, hook: str) -> Any:
    """``callback``'s bound ``hook`` without the wrapper that lets MMEngine-style code pass the
    trainer as ``runner=``: the list always passes it positionally, so the hot path saves a call.
    """
    if hook in vars(callback):  # set on the instance: call it as it is
        return getattr(callback, hook)
    function = getattr(type(callback), hook)
    inner = getattr(function, "__wrapped__", None)
    if inner is None or not getattr(function, "_accepts_runner", False):
        return getattr(callback, hook)
    return inner.__get__(callback, type(callback))


class CallbackList:
    """Callbacks sorted by priority (stable for equal priorities), each hook called in order.

    Only callbacks that override a hook are called for it, so an unused hook point costs one
    empty loop on the hot path.
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks: list[Callback] = []
        self._by_hook: dict[str, list[tuple[Callback, Any]]] = {h: [] for h in HOOK_NAMES}
        for callback in callbacks:
            self.append(callback)

    def append(self, callback: Callback) -> None:
        check_callback(callback)
        self.callbacks.append(callback)
        self.callbacks.sort(key=lambda cb: get_priority(cb.priority))  # sort is stable
        for hook in HOOK_NAMES:
            self._by_hook[hook] = [
                (cb, direct_method(cb, hook)) for cb in self.callbacks
                if getattr(type(cb), hook) is not getattr(Callback, hook)
            ]

    def call(self, hook: str, trainer: Any, **kwargs: Any) -> None:
        for callback, method in self._by_hook[hook]:
            try:
                method(trainer, **kwargs)
            except Exception as err:
                where = f"{type(callback).__name__}.{hook}"
                if err.args and isinstance(err.args[0], str) and where not in err.args[0]:
                    err.args = (f"{err.args[0]} (raised in {where})", *err.args[1:])
                err.add_note(f"raised in {where}")
                raise

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def get(self, cls: type) -> list[Callback]:
        """The registered callbacks that are instances of ``cls``."""
        return [cb for cb in self.callbacks if isinstance(cb, cls)]
