"""Ordered dispatch of hook calls to callbacks, with the checks done once at registration."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from trainer.callbacks.base import HOOK_NAMES, Callback, get_priority

from trainer.arguments import is_int

HOOK_PREFIXES = ("before_", "after_", "on_")
_ITER_KWARGS = ("batch_idx", "data_batch")


def hook_keywords(hook: str) -> tuple[str, ...]:
    """The arguments the trainer passes to ``hook`` after itself, in order (MMEngine's names)."""
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


class KeywordCall:
    """Calls a hook whose parameters are not ``(trainer, <the hook's arguments in order>)``
    (``**kwargs``, another order, a function set on the instance) by keyword."""

    def __init__(self, callback: Callback, method: Any, names: tuple[str, ...]) -> None:
        self.__self__, self.method, self.names = callback, method, names

    def __call__(self, trainer: Any, *args: Any) -> None:
        self.method(trainer, **dict(zip(self.names, args)))


def positional_method(callback: Callback, hook: str) -> Any:
    """What the list calls as ``method(trainer, *arguments)``, in :func:`hook_keywords` order:
    the bound method itself when its parameters take them so (a call without a keyword dict
    per callback, twice an iteration), else a :class:`KeywordCall`."""
    method, names = direct_method(callback, hook), hook_keywords(hook)
    if getattr(method, "__self__", None) is callback:
        try:
            bound = inspect.signature(method).bind(None, *names)
        except TypeError:
            bound = None
        if bound is not None and tuple(bound.arguments)[1:] == names:
            return method
    return KeywordCall(callback, method, names)


def skips_train_iters(callback: Callback) -> bool:
    """Whether ``callback`` says which iterations its ``after_train_iter`` may skip: only a
    class that defines both does, so a subclass overriding ``after_train_iter`` alone is
    called every iteration."""
    if "after_train_iter" in vars(callback) or "skippable_train_iters" in vars(callback):
        return False
    owners = [next((c for c in type(callback).__mro__ if name in vars(c)), None)
              for name in ("after_train_iter", "skippable_train_iters")]
    return owners[1] is not None and owners[0] is owners[1]


def skippable(callback: Callback, trainer: Any, batch_idx: int) -> int:
    """``callback.skippable_train_iters(trainer, batch_idx)``, refused unless an int."""
    count = callback.skippable_train_iters(trainer, batch_idx)
    if not is_int(count):
        raise TypeError(
            f"{type(callback).__name__}.skippable_train_iters must return an int (how many of "
            f"the next iterations its after_train_iter may skip; 0 for none), got {count!r}")
    return count


def name_the_callback(err: Exception, method: Any, hook: str) -> None:
    """Add which callback's ``hook`` raised ``err`` to its message and notes."""
    where = f"{type(method.__self__).__name__}.{hook}"
    if err.args and isinstance(err.args[0], str) and where not in err.args[0]:
        err.args = (f"{err.args[0]} (raised in {where})", *err.args[1:])
    err.add_note(f"raised in {where}")


class CallbackList:
    """Callbacks sorted by priority (stable for equal priorities), each hook called in order.

    ``methods[hook]`` holds what to call for the callbacks that override ``hook``, each taking
    ``(trainer, *arguments)``, so an unused hook point costs one empty loop on the hot path.
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks: list[Callback] = []
        self.methods: dict[str, tuple[Any, ...]] = dict.fromkeys(HOOK_NAMES, ())
        # Each callback's overridden hooks, looked up once: inspecting every callback's
        # signatures again on each append made building the list quadratic.
        self._overridden: list[dict[str, Any]] = []
        self._sparse: tuple[Callback, ...] = ()  # those that skip some after_train_iter
        self._every_train_iter: tuple[Any, ...] = ()  # the after_train_iter of the others
        self._skip = 0  # iterations left on which only the others are called
        for callback in callbacks:
            self.append(callback)

    def append(self, callback: Callback) -> None:
        check_callback(callback)
        overridden = {hook: positional_method(callback, hook) for hook in HOOK_NAMES
                      if getattr(type(callback), hook) is not getattr(Callback, hook)}
        pairs = sorted(zip([*self.callbacks, callback], [*self._overridden, overridden]),
                       key=lambda pair: get_priority(pair[0].priority))  # sort is stable
        self.callbacks = [cb for cb, _ in pairs]
        self._overridden = [hooks for _, hooks in pairs]
        for hook in HOOK_NAMES:
            self.methods[hook] = tuple(hooks[hook] for hooks in self._overridden if hook in hooks)
        self._sparse = tuple(cb for cb in self.callbacks if skips_train_iters(cb))
        every = self.methods["after_train_iter"]  # the same tuple when none skips
        self._every_train_iter = tuple(
            method for method in every if method.__self__ not in self._sparse
        ) if self._sparse else every
        self._skip = 0

    def call(self, hook: str, trainer: Any, *args: Any) -> None:
        """``hook`` on every callback that defines it; ``args`` in :func:`hook_keywords` order."""
        method = None
        try:
            for method in self.methods[hook]:
                method(trainer, *args)
        except Exception as err:
            name_the_callback(err, method, hook)
            raise

    # The training loop's two hooks of every iteration, with their arguments spelt out: a call
    # that unpacks ``*args`` costs about three plain calls, once per callback and iteration.
    def call_before_iter(self, hook: str, trainer: Any, batch_idx: int, data_batch: Any) -> None:
        """``call(hook, trainer, batch_idx, data_batch)`` for a ``before_*_iter`` hook."""
        method = None
        try:
            for method in self.methods[hook]:
                method(trainer, batch_idx, data_batch)
        except Exception as err:
            name_the_callback(err, method, hook)
            raise

    def call_after_train_iter(self, trainer: Any, batch_idx: int, data_batch: Any,
                              outputs: Any) -> None:
        """``after_train_iter`` on the callbacks that need this iteration.

        A callback that acts only on some iterations (a log line, a checkpoint) may say how many
        of the following ones it skips with ``skippable_train_iters(trainer, batch_idx) -> int``
        (asked after each iteration it sees, when defined by the class that defines its
        ``after_train_iter``); until then only the others are called, in priority order.
        """
        if self._skip:
            self._skip -= 1
            methods = self._every_train_iter
        else:
            methods = self.methods["after_train_iter"]
        method = None
        try:
            for method in methods:
                method(trainer, batch_idx, data_batch, outputs)
        except Exception as err:
            name_the_callback(err, method, "after_train_iter")
            raise
        if methods is not self._every_train_iter:
            self._skip = max(0, min(skippable(cb, trainer, batch_idx) for cb in self._sparse))

    def restart_train_iters(self) -> None:
        """Call every ``after_train_iter`` again from the next iteration: an epoch or a run
        starts, and what a callback skips was counted from the iteration it last saw."""
        self._skip = 0

    def call_each(self, hook: str, trainer: Any, *args: Any) -> list[Exception]:
        """``hook`` on every callback even when some raise (cleaning up after a failed run);
        the errors, each naming its callback."""
        errors = []
        for method in self.methods[hook]:
            try:
                method(trainer, *args)
            except Exception as err:
                name_the_callback(err, method, hook)
                errors.append(err)
        return errors

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def get(self, cls: type) -> list[Callback]:
        """The registered callbacks that are instances of ``cls``."""
        return [cb for cb in self.callbacks if isinstance(cb, cls)]
