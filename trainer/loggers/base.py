"""The base of every scalar sink: a callback that writes what the logger logs, on rank zero."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.callbacks.base import Callback


def require_logger(trainer: Any, name: str) -> None:
    """Sinks write what ``LoggerCallback`` publishes; without it they would stay empty."""
    from trainer.callbacks.logger import LoggerCallback

    if not trainer.callbacks.get(LoggerCallback):
        raise ValueError(
            f"{name} writes what LoggerCallback logs, but the logger is switched off: remove "
            "default_callbacks={'logger': None} (pass {'logger': {...}} to change its interval "
            "or output instead)")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim_wrapper": {"optimizer": {"lr": 0.1}}}`` -> ``{"optim_wrapper.optimizer.lr": 0.1}``;
    values other than numbers, strings and booleans become their ``repr``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = repr(value)
    return flat


class ScalarSink(Callback):
    """A destination for the logger's scalars; subclasses write them somewhere.

    Each record that ``LoggerCallback`` logs (``mode`` ``"train"``, ``"val"`` or ``"test"``,
    its scalars, its step) reaches :meth:`write`, so every sink holds the numbers of the log line
    and of ``scalars.jsonl``. :meth:`open` runs once per run on rank zero, after a resumed
    checkpoint restored the sink's state, with the run configuration to record as
    hyperparameters; :meth:`close` when the run ends. Other ranks write nothing.
    """

    priority = "VERY_LOW"

    def __init__(self, priority: int | str | None = None) -> None:
        super().__init__(priority)
        self._open = False
        self._trainer: Any = None  # between before_run and after_run, on rank zero

    # What a sink implements.
    def open(self, trainer: Any, config: dict[str, Any]) -> None:
        """Start writing (a file, a tracker run); ``config`` is the run configuration."""

    def write(self, mode: str, scalars: dict[str, float], step: int) -> None:
        """Write one record."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release what :meth:`open` took."""

    # Hooks: subscribe at the start, open once a resume had its say, close at the end.
    def before_run(self, trainer: Any) -> None:
        require_logger(trainer, type(self).__name__)
        if trainer.rank == 0:
            trainer.message_hub.subscribe(self._receive)
            self._trainer = trainer

    def before_train(self, trainer: Any) -> None:
        self._ensure_open()

    def _receive(self, mode: str, scalars: dict[str, float], step: int) -> None:
        self._ensure_open()
        if scalars:
            self.write(mode, scalars, step)

    def _ensure_open(self) -> None:
        if self._trainer is not None and not self._open:
            self.open(self._trainer, dict(self._trainer.cfg))
            self._open = True

    def after_run(self, trainer: Any) -> None:
        trainer.message_hub.unsubscribe(self._receive)
        self._trainer = None
        if self._open:
            self._open = False
            self.close()
