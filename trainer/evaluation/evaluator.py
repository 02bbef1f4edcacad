"""Turn what ``val_step``/``test_step`` return into a dict of plain float metrics.

Three kinds of metric are accepted, so that code written for torchmetrics, for MMEngine or for
neither works unchanged: torchmetrics ``Metric``/``MetricCollection`` objects (which synchronise
across ranks inside ``compute()``), MMEngine-style metrics (``process`` + ``compute_metrics`` over a
``results`` list gathered here), and, with no metric at all, a batch-size-weighted average of the
scalars that the step returned.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import sys
from collections.abc import Mapping
from typing import Any

import torch

from trainer.arguments import check_non_negative_int
from trainer.dist import (
    all_gather_object,
    all_reduce,
    is_distributed,
)
from trainer.evaluation.metric import BaseMetric, collect_and_compute, collect_results

__all__ = ["BaseMetric", "Evaluator", "batch_size_of", "collect_results", "describe"]

MetricValue = float | list[Any]

_ACCEPTED = (
    "None, a torchmetrics Metric or MetricCollection, a dict of name -> Metric, an MMEngine-style "
    "metric (an object with process(data_batch, outputs) and compute_metrics(results)), a "
    "dict(type=...) config of one of these, or a list of them"
)


class Evaluator:
    """Feeds step outputs to the configured metrics and returns ``{name: float}`` at the end.

    How outputs reach a metric: a tuple or list becomes a torchmetrics ``update(*outputs)``, a dict
    ``update(**outputs)``, anything else ``update(outputs)``; an MMEngine-style metric gets
    ``process(data_batch, outputs)``. With no metric, ``outputs`` must be a dict of scalars, which
    are averaged over the data set weighted by batch size. ``evaluate`` resets all state.

    Args:
        metrics: see ``_ACCEPTED`` below; ``Evaluator.build`` also passes an ``Evaluator`` through.
        name: the argument the metrics came from (``"val_evaluator"``), used in error messages.

    Example:
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> evaluator = Evaluator.build(MulticlassAccuracy(num_classes=3, average="micro"))
        >>> evaluator.process({"x": torch.zeros(4, 8)}, (torch.tensor([0, 1, 2, 2]),
        ...                                             torch.tensor([0, 1, 2, 1])))
        >>> evaluator.evaluate()
        {'MulticlassAccuracy': 0.75}
    """

    def __init__(self, metrics: Any = None, *, name: str = "evaluator") -> None:
        self.name = name
        # (key, metric): key is the result name of a single torchmetrics Metric, else None.
        self._entries: list[tuple[str | None, Any]] = []
        self._add(metrics)
        _check_unique([key for key, _ in self._entries if key is not None], name)
        self._device: torch.device | None = None
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}

    @classmethod
    def build(cls, metrics: Any, name: str = "evaluator") -> Evaluator:
        """An ``Evaluator`` from any accepted form; an ``Evaluator`` is returned as it is."""
        return metrics if isinstance(metrics, Evaluator) else cls(metrics, name=name)

    @property
    def metrics(self) -> list[Any]:
        """The metric objects, in the order their results appear."""
        return [metric for _, metric in self._entries]

    @property
    def dataset_meta(self) -> dict[str, Any] | None:
        """The data set's meta information, shared with MMEngine-style metrics that keep one."""
        return getattr(self, "_dataset_meta", None)

    @dataset_meta.setter
    def dataset_meta(self, meta: dict[str, Any] | None) -> None:
        self._dataset_meta = meta
        for metric in self.metrics:
            if not _is_torchmetric(metric):
                metric.dataset_meta = meta

    def to(self, device: torch.device | str) -> Evaluator:
        """Move torchmetrics states to the model's device (and average there when no metric)."""
        self._device = torch.device(device)
        for metric in self.metrics:
            if _is_torchmetric(metric):
                metric.to(self._device)
        return self

    def reset(self) -> None:
        """Forget everything processed so far."""
        for metric in self.metrics:
            if _is_torchmetric(metric):
                metric.reset()
            elif isinstance(getattr(metric, "results", None), list):
                metric.results.clear()
        self._sums.clear()
        self._counts.clear()

    def process(self, data_batch: Any, outputs: Any) -> None:
        """Feed one batch's step outputs to every metric (or to the running average)."""
        if not self._entries:
            self._accumulate(data_batch, outputs)
            return
        for _, metric in self._entries:
            _feed(metric, data_batch, outputs)

    def evaluate(self, size: int | None = None) -> dict[str, MetricValue]:
        """All metrics over the data set as plain floats (lists for per-class values), then reset.

        Args:
            size: the data set's length; results that MMEngine-style metrics gathered beyond it
                are the sampler's padding and are dropped. torchmetrics and the plain average
                cannot tell padded samples apart and count them, as Lightning does.
        """
        check_non_negative_int("size", size, allow_none=True)
        try:
            if not self._entries:
                return self._average()
            results: dict[str, MetricValue] = {}
            for key, metric in self._entries:
                part = self._compute(key, metric, size)
                for name, value in part.items():
                    if name in results:
                        raise ValueError(
                            f"Two metrics of {self.name} both produce the result {name!r}; give "
                            "them distinct names (a dict {'name': metric}, a MetricCollection "
                            "prefix, or BaseMetric(prefix=...))"
                        )
                    results[name] = _to_float(value, f"{type(metric).__name__} result {name!r}")
            return results
        finally:
            self.reset()

    def __repr__(self) -> str:
        names = [key or type(metric).__name__ for key, metric in self._entries]
        return f"Evaluator(name={self.name!r}, metrics={names or 'average of step outputs'})"

    # -- building -----------------------------------------------------------------------------

    def _add(self, metrics: Any) -> None:
        if metrics is None:
            return
        if isinstance(metrics, Evaluator):
            self._entries.extend(metrics._entries)
        elif _is_metric(metrics):
            self._entries.append((type(metrics).__name__, metrics))
        elif _is_collection(metrics):
            self._entries.append((None, metrics))
        elif isinstance(metrics, Mapping) and isinstance(metrics.get("type"), (str, type)):
            from trainer.config.types import build_object

            self._add(build_object(metrics, _torchmetrics_table(), f"{self.name} metric"))
        elif isinstance(metrics, Mapping):
            for key, metric in metrics.items():
                if not isinstance(key, str) or not key:
                    raise TypeError(f"{self.name} dict keys must be non-empty strings, got {key!r}")
                if not _is_metric(metric):
                    raise TypeError(f"{self.name}[{key!r}] must be a torchmetrics Metric, got "
                                    f"{type(metric).__name__}; a dict maps names to Metrics")
                self._entries.append((key, metric))
        elif isinstance(metrics, (list, tuple)):
            for metric in metrics:
                self._add(metric)
        elif isinstance(metrics, type):
            raise TypeError(f"{self.name} got the class {metrics.__name__}, not an instance; "
                            f"pass {metrics.__name__}(...)")
        elif callable(getattr(metrics, "process", None)) and callable(
            getattr(metrics, "compute_metrics", None)
        ):
            if not callable(getattr(metrics, "evaluate", None)) and not isinstance(
                getattr(metrics, "results", None), list
            ):
                raise TypeError(
                    f"{self.name} got {type(metrics).__name__}, which has process() and "
                    "compute_metrics() but neither evaluate(size) nor a results list; subclass "
                    "trainer.evaluator.BaseMetric"
                )
            self._entries.append((None, metrics))
        else:
            raise TypeError(f"{self.name} must be {_ACCEPTED}; got {type(metrics).__name__}")

    # -- computing ----------------------------------------------------------------------------

    def _compute(self, key: str | None, metric: Any, size: int | None) -> Mapping[str, Any]:
        label = type(metric).__name__
        if _is_metric(metric):
            value = metric.compute()
            part = value if isinstance(value, Mapping) else {key: value}
        elif _is_collection(metric):
            part = metric.compute()
        elif callable(getattr(metric, "evaluate", None)):
            part, label = metric.evaluate(size), f"{label}.evaluate()"
        else:
            part = collect_and_compute(metric, size, to_cpu=True, prefix=None)
        if not isinstance(part, Mapping):
            raise TypeError(f"{label} must return a dict of name -> value, "
                            f"got {type(part).__name__}")
        return part

    def _accumulate(self, data_batch: Any, outputs: Any) -> None:
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"val_step/test_step returned {describe(outputs)} and {self.name} has no metric. "
                "Without a metric the outputs must be a dict of scalars such as {'loss': tensor}, "
                f"which are averaged over the data set. {_pass_metric_hint(self.name)}"
            )
        size = batch_size_of(data_batch)
        weighted: dict[str, torch.Tensor | float] = {}
        for key, value in outputs.items():
            if not isinstance(key, str):
                raise TypeError(f"val_step/test_step output keys must be strings, got {key!r}")
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                dtype = torch.float32 if value.device.type == "mps" else torch.float64
                weighted[key] = value.detach().reshape(()).to(dtype) * size
            elif isinstance(value, numbers.Real):
                weighted[key] = float(value) * size
            else:
                raise ValueError(
                    f"val_step/test_step returned {key!r}: {describe(value)}, but without a metric "
                    f"every value must be a scalar to average. {_pass_metric_hint(self.name)}"
                )
        for key, value in weighted.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + size

    def _average(self) -> dict[str, MetricValue]:
        keys = sorted(self._sums)
        if is_distributed():  # a rank may have seen a key the others did not
            keys = sorted(set().union(*all_gather_object(keys)))
        if not keys:
            return {}
        tensors = [s for s in self._sums.values() if isinstance(s, torch.Tensor)]
        device = self._device or (tensors[0].device if tensors else torch.device("cpu"))
        dtype = torch.float32 if device.type == "mps" else torch.float64
        totals = torch.stack([
            torch.stack([torch.as_tensor(self._sums.get(k, 0.0), dtype=dtype, device=device)
                         for k in keys]),
            torch.tensor([self._counts.get(k, 0) for k in keys], dtype=dtype, device=device),
        ])
        all_reduce(totals, op="sum")
        return dict(zip(keys, (totals[0] / totals[1]).tolist(), strict=True))


# -- helpers shared by BaseMetric and duck-typed MMEngine metrics ----------------------------------


def batch_size_of(data_batch: Any) -> int:
    """Length of dim 0 of the first tensor (with a dim 0) in a nested batch; 1 when none."""
    tensor = _first_tensor(data_batch)
    return 1 if tensor is None else int(tensor.shape[0])


def _first_tensor(data: Any) -> torch.Tensor | None:
    if isinstance(data, torch.Tensor):
        return data if data.ndim > 0 else None
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        children: Any = (getattr(data, field.name) for field in dataclasses.fields(data))
    elif isinstance(data, Mapping):
        children = data.values()
    elif isinstance(data, (list, tuple)):
        children = data
    else:
        return None
    for child in children:
        found = _first_tensor(child)
        if found is not None:
            return found
    return None


def describe(value: Any, depth: int = 0) -> str:
    """A short picture of a value's structure for error messages: ``(Tensor[32] int64, float)``."""
    if isinstance(value, torch.Tensor):
        shape = ", ".join(str(dim) for dim in value.shape)
        return f"Tensor[{shape}] {str(value.dtype).removeprefix('torch.')}"
    if depth >= 3:
        return "..."
    if isinstance(value, Mapping):
        items = [f"{k}: {describe(v, depth + 1)}" for k, v in list(value.items())[:8]]
        return "{" + ", ".join(items) + (", ..." if len(value) > 8 else "") + "}"
    if isinstance(value, (list, tuple)):
        items = [describe(v, depth + 1) for v in value[:8]] + (["..."] if len(value) > 8 else [])
        inner = ", ".join(items)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' * (len(value) == 1)})"
    return "None" if value is None else type(value).__name__


def _feed(metric: Any, data_batch: Any, outputs: Any) -> None:
    """Give one batch to a metric; a rejection names the metric and what it was given."""
    name = type(metric).__name__
    try:
        if not _is_torchmetric(metric):
            label = f"{name}.process(data_batch, outputs)"
            metric.process(data_batch, outputs)
        elif isinstance(outputs, Mapping):
            label = f"{name}.update(**outputs)"
            metric.update(**outputs)
        elif isinstance(outputs, (tuple, list)):
            label = f"{name}.update(*outputs)"
            metric.update(*outputs)
        else:
            label = f"{name}.update(outputs)"
            metric.update(outputs)
    except torch.cuda.OutOfMemoryError:
        raise
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError) as err:
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(f"{label} failed for outputs {describe(outputs)}: {err}") from err


def _to_float(value: Any, where: str) -> MetricValue:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.numel() == 1:
            return float(value.item())
        return value.to("cpu", torch.float64).tolist()
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_float(item, where) for item in value]
    if callable(getattr(value, "tolist", None)):  # NumPy arrays and scalars
        return _to_float(value.tolist(), where)
    raise TypeError(f"{where} is a {type(value).__name__}; metric values must be numbers, "
                    "tensors or lists of them")


def _torchmetrics_types() -> tuple[type, type] | None:
    """torchmetrics' ``Metric`` and ``MetricCollection``, or ``None`` while torchmetrics is not
    imported: whoever passes a metric object has imported it, so it is never imported here."""
    torchmetrics = sys.modules.get("torchmetrics")
    return None if torchmetrics is None else (torchmetrics.Metric, torchmetrics.MetricCollection)


def _is_metric(metric: Any) -> bool:
    types = _torchmetrics_types()
    return types is not None and isinstance(metric, types[0])


def _is_collection(metric: Any) -> bool:
    types = _torchmetrics_types()
    return types is not None and isinstance(metric, types[1])


def _is_torchmetric(metric: Any) -> bool:
    types = _torchmetrics_types()
    return types is not None and isinstance(metric, types)


def _check_unique(names: list[str], evaluator: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"{evaluator} has two metrics named {name!r}; name them with a dict "
                "{'acc_a': ..., 'acc_b': ...} or a MetricCollection"
            )
        seen.add(name)


def _pass_metric_hint(name: str) -> str:
    if name in ("val_evaluator", "test_evaluator"):
        return f"To compute metrics from other outputs, pass one as Trainer({name}=...)."
    return ("To compute metrics from other outputs, pass one as Trainer(val_evaluator=...) / "
            "Trainer(test_evaluator=...).")


@functools.cache
def _torchmetrics_table() -> dict[str, type]:
    """torchmetrics' top-level metric classes by name, for ``dict(type="MeanSquaredError")``."""
    import torchmetrics  # a config names a metric: now it is used

    table = {}
    for name in torchmetrics.__all__:
        obj = getattr(torchmetrics, name, None)
        if isinstance(obj, type) and issubclass(obj, (torchmetrics.Metric,
                                                      torchmetrics.MetricCollection)):
            table[name] = obj
    return table
