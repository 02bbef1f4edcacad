"""The sanity pass: a few validation batches before the first training iteration.

Mistakes that would otherwise surface at the first validation, an epoch or a thousand iterations
into a run (a model whose ``val_step`` output the evaluator cannot take, a ``save_best`` or
``monitor`` name the evaluator never returns), fail within a second. The pass leaves no trace:
no callback hook fires, the RNG streams are restored, the evaluator is reset, the counters, the
message hub and the logs are untouched, and the model goes back to training mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from trainer.model import check_train_step
from trainer.randomness import preserve_rng
from trainer.suggestions import did_you_mean

if TYPE_CHECKING:
    from trainer.loops import ValLoop
    from trainer.trainer import Trainer


def check_before_training(trainer: Trainer, val_loop: ValLoop | None) -> dict[str, Any] | None:
    """Check the model against its optimizers, then run ``trainer.num_sanity_val_batches``
    validation batches and check the metrics that callbacks monitor.

    Metric names come from every callback's ``monitored_metrics`` and every metric-driven
    scheduler's ``monitor``. Returns the metrics of the pass (``None`` when it did not run: no
    validation loader, or ``num_sanity_val_batches=0``).
    """
    check_train_step(trainer.model, trainer.optim_wrapper)
    if val_loop is None or not trainer.num_sanity_val_batches:
        return None
    metrics = evaluate_batches(trainer, val_loop, trainer.num_sanity_val_batches)
    check_monitored_metrics([*trainer.callbacks, *schedulers(trainer.param_schedulers)], metrics)
    return metrics


def evaluate_batches(trainer: Trainer, val_loop: ValLoop, num_batches: int) -> dict[str, Any]:
    """``val_step`` and the evaluator over the first ``num_batches`` batches, without hooks."""
    model, evaluator = trainer.model, val_loop.evaluator
    was_training = model.training
    trainer.sanity_checking = True
    model.eval()
    evaluator.to(trainer.device)
    evaluator.reset()
    try:
        with preserve_rng(), torch.no_grad():
            for data_batch in first_batches(val_loop.dataloader, num_batches):
                with trainer.autocast():
                    outputs = trainer.wrapped_model.val_step(data_batch)
                evaluator.process(data_batch=data_batch, outputs=outputs)
            return evaluator.evaluate()
    finally:
        evaluator.reset()
        model.train(was_training)
        trainer.sanity_checking = False


def schedulers(param_schedulers: Any) -> list[Any]:
    """``trainer.param_schedulers`` as one list (it may be a dict of lists, one per optimizer)."""
    if isinstance(param_schedulers, dict):
        return [s for group in param_schedulers.values() for s in group]
    return list(param_schedulers or [])


def first_batches(dataloader: Iterable, num_batches: int) -> list[Any]:
    """The first ``num_batches`` batches (fewer when the loader is shorter)."""
    iterator = iter(dataloader)
    batches = []
    for _ in range(num_batches):
        try:
            batches.append(next(iterator))
        except StopIteration:
            break
    del iterator  # shut down loader workers now, not at some later garbage collection
    return batches


def monitored_metrics(sources: Iterable[Any]) -> list[tuple[Any, str]]:
    """``(source, name)`` for every validation metric a callback or scheduler needs.

    A callback declares them with a ``monitored_metrics`` property (names as the evaluator
    returns them; a ``"val/"`` prefix is accepted, ``"train/..."`` names are not validation
    metrics and are not checked here); a metric-driven scheduler (``need_val_args``, such as
    ``ReduceOnPlateauLR``) by its ``monitor``.
    """
    found = []
    for source in sources:
        names = getattr(source, "monitored_metrics", None)
        if names is None and getattr(source, "need_val_args", False):
            names = [source.monitor] if isinstance(getattr(source, "monitor", None), str) else []
        for name in names or ():
            if not name.startswith("train/"):
                found.append((source, name.removeprefix("val/")))
    return found


def check_monitored_metrics(sources: Iterable[Any], metrics: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a monitored name the validation did not return."""
    for callback, name in monitored_metrics(sources):
        if name not in metrics:
            raise ValueError(
                f"{type(callback).__name__} monitors {name!r}, but validation returns "
                f"{sorted(metrics) or 'no metrics'}.{did_you_mean(name, metrics)} (found by the "
                "sanity check before training; num_sanity_val_batches=0 switches it off)")
