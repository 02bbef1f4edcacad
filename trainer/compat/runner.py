"""What MMEngine's ``Runner`` offers a hook, on the ``Trainer``: ``logger``, ``cfg``, ...

The counters, model, loaders, loops, ``message_hub``, ``work_dir``, ``log_dir``,
``timestamp``, ``rank`` and ``world_size`` are the Trainer's own attributes; this mixin adds
the few that are derived from them.
"""

from __future__ import annotations

import logging
from typing import Any


class _RunLogHandler(logging.Handler):
    """Sends records to the run's text log (``<log_dir>/<timestamp>.log``) through the
    ``LoggerCallback`` that writes it, or to the console when there is none."""

    def __init__(self, trainer: Any) -> None:
        super().__init__(logging.INFO)
        self.trainer = trainer
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        from trainer.callbacks.logger import LoggerCallback
        from trainer.logger import print_log

        message = self.format(record)
        for callback in self.trainer.callbacks.get(LoggerCallback):
            if callback.log is not None:
                callback.log.info(message)
                return
        print_log(message)


class RunnerAttributes:
    """``logger``, ``cfg`` and ``experiment_name``, as MMEngine's ``Runner`` has them."""

    _logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """A ``logging.Logger`` that writes to this run's log (rank zero), like MMEngine's
        ``runner.logger``; it is the Trainer's own (not in ``logging``'s global registry)."""
        if self._logger is None:
            logger = logging.Logger(f"trainer.{self.timestamp}", logging.INFO)
            logger.addHandler(_RunLogHandler(self))
            self._logger = logger
        return self._logger

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved run configuration: the config of ``Trainer.from_config``, or the
        keyword arguments the Trainer was built with, defaults filled in (``val_interval``'s
        too, which depends on the kind of loop)."""
        if self.config is not None:
            return self.config
        return {**self._init_kwargs, "val_interval": self.val_interval}

    @property
    def experiment_name(self) -> str:
        """``<last folder of work_dir>_<timestamp>``, the name the log's header shows."""
        from trainer.callbacks.logger import experiment_name

        return experiment_name(self)
