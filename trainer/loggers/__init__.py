"""Where logged scalars go, chosen with ``Trainer(loggers=[...])``.

``"jsonl"`` (the default) is the logger's own ``scalars.jsonl``; ``"csv"``, ``"tensorboard"``,
``"mlflow"`` and ``"wandb"`` are sinks (callbacks) that receive the same records. The sink
classes load on first use, so MLflow and W&B are imported only by runs that name them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

# Name -> "module:Class" of the sink; "jsonl" has none (the logger callback writes the file).
_SINKS = {
    "csv": "trainer.loggers.csv_logger:CSVLogger",
    "tensorboard": "trainer.callbacks.tensorboard:TensorBoardCallback",
    "mlflow": "trainer.loggers.mlflow_logger:MLflowLogger",
    "wandb": "trainer.loggers.wandb_logger:WandbLogger",
}
NAMES = ("jsonl", *_SINKS)
_EXAMPLE = ('loggers=["jsonl", "csv", dict(type="mlflow", tracking_uri="sqlite:///mlflow.db"), '
            'dict(type="wandb", project="p", mode="offline")]')


def sink_class(name: str) -> type:
    """The sink class of a logger name (``"csv"`` -> ``CSVLogger``)."""
    module, cls = _SINKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_loggers(specs: Sequence[str | Mapping[str, Any] | Any] | None) -> tuple[bool, list[Any]]:
    """``(write scalars.jsonl?, sink callbacks)`` for ``Trainer(loggers=specs)``.

    Each entry is a name, ``dict(type=name, **options)`` or a sink object (a ``ScalarSink`` or
    ``TensorBoardCallback``); ``None`` means ``["jsonl"]``.

    Example:
        >>> build_loggers(["jsonl", "csv"])
        (True, [CSVLogger(priority='VERY_LOW')])
    """
    from trainer.callbacks.tensorboard import TensorBoardCallback
    from trainer.loggers.base import ScalarSink

    if specs is None:
        return True, []
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
        raise TypeError(f"loggers must be a list of names or dicts, e.g. {_EXAMPLE}; got {specs!r}")
    jsonl, sinks = False, []
    for spec in specs:
        if isinstance(spec, (ScalarSink, TensorBoardCallback)):
            sinks.append(spec)
            continue
        options = dict(spec) if isinstance(spec, Mapping) else {"type": spec}
        name = options.pop("type", None)
        if name not in NAMES:
            raise ValueError(f"unknown logger {spec!r}: loggers are {list(NAMES)} (a name, or "
                             f"a dict with type=<name> and its options), e.g. {_EXAMPLE}")
        if name == "jsonl":
            if options:
                raise ValueError(f"logger 'jsonl' takes no options, got {sorted(options)}")
            jsonl = True
            continue
        from trainer.config.types import check_kwargs

        cls = sink_class(name)
        check_kwargs(cls, options, f"logger {name!r}")
        sinks.append(cls(**options))
    return jsonl, sinks


__all__ = ["NAMES", "build_loggers", "sink_class"]
