"""MMEngine-style metrics: per-sample ``results`` gathered from every rank in sampler order.

``BaseMetric`` keeps MMEngine's API so metrics written for it port by changing the import;
``collect_results`` is the gathering both it and duck-typed metrics use.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from trainer.arguments import check_non_negative_int
from trainer.dist import all_gather_object, broadcast_object, is_distributed, is_main_process

__all__ = ["BaseMetric", "collect_and_compute", "collect_results"]


class BaseMetric(ABC):
    """MMEngine's metric API: ``process`` stores per-sample results, ``compute_metrics`` sums up.

    ``evaluate(size)`` gathers ``results`` from every rank, restores the sampler's order, drops the
    samples that ``DistributedSampler`` padded on (so none is counted twice), computes on rank zero
    and shares the answer. ``process`` should therefore append one entry per sample.

    Args:
        collect_device: ``"cpu"`` moves tensors in ``results`` to the CPU before gathering;
            ``"gpu"`` gathers them as they are.
        prefix: prepended to every key as ``"prefix/key"``; defaults to ``default_prefix``.

    Example:
        >>> class MAE(BaseMetric):
        ...     def process(self, data_batch, data_samples):
        ...         preds, target = data_samples
        ...         self.results.extend((preds - target).abs().tolist())
        ...     def compute_metrics(self, results):
        ...         return {"mae": sum(results) / len(results)}
        >>> metric = MAE(prefix="val")
        >>> metric.process(None, (torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0])))
        >>> metric.evaluate(size=2)
        {'val/mae': 0.25}
    """

    default_prefix: str | None = None

    def __init__(self, collect_device: str = "cpu", prefix: str | None = None) -> None:
        if collect_device not in ("cpu", "gpu"):
            raise ValueError(f"collect_device must be 'cpu' or 'gpu', got {collect_device!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string or None, got {type(prefix).__name__}")
        self.collect_device = collect_device
        self.prefix = prefix or self.default_prefix
        self.results: list[Any] = []
        self.dataset_meta: dict[str, Any] | None = None

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Any) -> None:
        """Append this batch's per-sample results to ``self.results``."""

    @abstractmethod
    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        """Reduce the results of the whole data set to ``{name: value}``."""

    def evaluate(self, size: int | None = None) -> dict[str, Any]:
        """Metrics over the first ``size`` samples of the data set (all when ``None``)."""
        return collect_and_compute(self, size, to_cpu=self.collect_device == "cpu",
                                    prefix=self.prefix)


def collect_results(results: Sequence[Any], size: int | None, to_cpu: bool = True) -> list[Any]:
    """Every rank's per-sample ``results`` in the sampler's order, cut to ``size``.

    ``DistributedSampler`` deals sample ``i`` to rank ``i % world_size``, so taking one entry
    from each rank in turn restores the data set's order, and the padding lands past ``size``.
    """
    results = list(results)
    if to_cpu and is_distributed():
        from lightning_utilities.core.apply_func import apply_to_collection

        results = apply_to_collection(results, torch.Tensor, lambda t: t.cpu())
    parts = all_gather_object(results)
    longest = max((len(part) for part in parts), default=0)
    ordered = [part[i] for i in range(longest) for part in parts if i < len(part)]
    return ordered if size is None else ordered[:size]


def collect_and_compute(metric: Any, size: int | None, to_cpu: bool,
                         prefix: str | None) -> dict[str, Any]:
    name = type(metric).__name__
    check_non_negative_int(f"{name}.evaluate size", size, allow_none=True)
    try:
        results = collect_results(metric.results, size, to_cpu=to_cpu)
    finally:
        metric.results.clear()
    if not results:  # every rank sees the same gathered list, so all raise together
        raise ValueError(
            f"{name}.evaluate() found no results: process() must append to self.results "
            "(one entry per sample), and the data loader must not be empty"
        )
    metrics = _on_rank_zero(functools.partial(metric.compute_metrics, results),
                            f"{name}.compute_metrics()")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{name}.compute_metrics() must return a dict of name -> value, "
                        f"got {type(metrics).__name__}")
    return {f"{prefix}/{k}" if prefix else k: v for k, v in metrics.items()}


def _on_rank_zero(fn: Callable[[], Any], what: str) -> Any:
    """``fn()`` on rank zero, shared with every rank; if it fails, every rank raises."""
    value, error = None, None
    if is_main_process():
        try:
            value = fn()
        except Exception as err:
            if not is_distributed():
                raise
            error = err
    status = broadcast_object(("ok", value) if error is None
                              else ("error", f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    if status[0] == "error":
        raise RuntimeError(f"{what} failed on rank 0 ({status[1]})")
    return status[1]


# -- small utilities -------------------------------------------------------------------------------
