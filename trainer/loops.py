"""The four loops, with MMEngine's semantics; subclass one and pass it as ``train_loop=`` etc.

Each ``run``/``run_epoch``/``run_iter`` fits on a screen and every callback call is visible in it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from trainer.arguments import check_dynamic_intervals
from trainer.data.samplers import make_resumable
from trainer.randomness import preserve_rng

if TYPE_CHECKING:
    from trainer.evaluation.evaluator import Evaluator
    from trainer.trainer import Trainer


def loader_length(dataloader: Iterable, name: str) -> int | None:
    """``len(dataloader)``, ``None`` when unknown; a loader with zero batches is an error."""
    try:
        length = len(dataloader)  # type: ignore[arg-type]
    except TypeError:
        return None
    if length == 0:
        raise ValueError(
            f"{name} has no batches (len() == 0): check the dataset is not empty and that "
            "drop_last=True does not drop its only, incomplete batch")
    return length


def dataset_size(dataloader: Any) -> int | None:
    """Samples in the loader's data set, ``None`` when it has no ``len``."""
    try:
        return len(dataloader.dataset)
    except (AttributeError, TypeError):
        return None


def set_sampler_epoch(dataloader: Any, epoch: int) -> None:
    """Tell a (distributed) sampler which epoch starts, so each epoch gets its own shuffle."""
    for sampler in (getattr(dataloader, "sampler", None), getattr(dataloader, "batch_sampler", None)):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)


class BaseTrainLoop:
    """What both training loops share: the validation schedule and the per-iteration step.

    ``dynamic_intervals=[(m1, i1), (m2, i2)]`` (MMEngine's): validate every ``val_interval``
    until ``m1`` epochs/iterations are done, every ``i1`` from then on, every ``i2`` from ``m2``.
    """

    def __init__(self, trainer: Trainer, dataloader: Iterable, val_loop: ValLoop | None = None,
                 val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals: Sequence[tuple[int, int]] | None = None) -> None:
        self.trainer = trainer
        self.epoch_length = loader_length(dataloader, "train_dataloader")
        self.dataloader, self.sampler = make_resumable(dataloader, trainer.rank)
        self.val_loop = val_loop
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.dynamic_intervals = check_dynamic_intervals(dynamic_intervals)

    # What MMEngine's loops offer a hook (runner.train_loop.iter, ...), read from the state.
    runner = property(lambda self: self.trainer)
    epoch = property(lambda self: self.trainer.state.epoch)
    iter = property(lambda self: self.trainer.state.iter)

    def should_validate(self, done: int, total: int | None) -> bool:
        """MMEngine's rule: every ``val_interval`` from ``val_begin``, and at the end."""
        if self.val_loop is None or done < self.val_begin:
            return False
        return (done % self.current_val_interval(done) == 0 or done == total
                or self.trainer.state.stop_training)

    def current_val_interval(self, done: int) -> int:
        """``val_interval``, or the one of the last milestone of ``dynamic_intervals`` passed."""
        if not self.dynamic_intervals:
            return self.val_interval
        step = bisect.bisect([m for m, _ in self.dynamic_intervals], done)
        return self.val_interval if step == 0 else self.dynamic_intervals[step - 1][1]

    def validate(self) -> None:
        self.trainer.nonfinite.check()  # a non-finite loss never reaches a validation
        self.val_loop.run()
        self.trainer.model.train()

    def run_iter(self, batch_idx: int, data_batch: Any) -> None:
        # The two hooks of every iteration go to the callback list itself: what
        # ``trainer.call_hook`` adds (keyword arguments) is not needed here.
        trainer, callbacks = self.trainer, self.trainer.callbacks
        callbacks.call_before_iter("before_train_iter", trainer, batch_idx, data_batch)
        outputs = trainer.wrapped_model.train_step(data_batch, optim_wrapper=trainer.optim_wrapper)
        trainer.nonfinite.record(trainer.state.iter, outputs)
        self.advance()
        callbacks.call_after_train_iter(trainer, batch_idx, data_batch, outputs)
        trainer.state.iter += 1

    def advance(self) -> None:
        """Record that one more batch of the current epoch has been consumed."""
        self.trainer.state.batch_idx += 1

    def new_iterator(self) -> Iterator:
        """An iterator over the loader that starts at the current data position.

        The sampler learns the epoch first (a ``DistributedSampler`` shuffles by it), on the
        loader iterated here, not the user's, which the strategy may have rebuilt. Mid-epoch
        (after a resume) the epoch's random draws were made before the checkpoint, so creating
        the iterator must not draw again: it runs with the RNG state preserved.
        """
        set_sampler_epoch(self.dataloader, self.trainer.epoch)
        done = self.trainer.state.batch_idx
        if not done:
            return iter(self.dataloader)
        with preserve_rng():
            iterator = iter(self.dataloader)
            if self.sampler is None:  # not a rebuildable loader: draw and discard
                for _ in range(done):
                    next(iterator)
        return iterator

    def samples_seen(self) -> int | None:
        """Samples this process has trained on, as whole epochs plus the current epoch's
        batches, each as large as it is (a short last batch too); ``None`` when the loader's
        batch sizes are not known before they are drawn (an iterable, a batch sampler)."""
        per_epoch = None if self.sampler is None else self.sampler.samples_per_epoch()
        if per_epoch is None:
            return None
        state = self.trainer.state
        return state.epoch * per_epoch + min(state.batch_idx * self.sampler.batch_size, per_epoch)

    def data_state(self) -> dict[str, Any]:
        """How to draw the current epoch's order again and how much of it is done (a few
        numbers, whatever the data set's size), so a resume continues its remaining batches."""
        if self.sampler is None:
            return {}
        return self.sampler.position(self.trainer.state.batch_idx)

    def load_data_state(self, state: dict[str, Any]) -> None:
        if self.sampler is not None and state:
            self.sampler.resume(state, self.trainer.state.batch_idx)


class EpochBasedTrainLoop(BaseTrainLoop):
    """Train for ``max_epochs`` passes over the loader, validating every ``val_interval`` epochs."""

    max_iters = property(lambda self: self.trainer.state.max_iters)

    def __init__(self, trainer: Trainer, dataloader: Iterable, max_epochs: int,
                 val_loop: ValLoop | None = None, val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals: Sequence[tuple[int, int]] | None = None) -> None:
        super().__init__(trainer, dataloader, val_loop, val_begin, val_interval, dynamic_intervals)
        self.max_epochs = max_epochs

    def run(self) -> None:
        trainer = self.trainer
        trainer.call_hook("before_train")
        trainer.model.train()
        state = trainer.state
        while state.epoch < self.max_epochs and not state.stop_training:
            self.run_epoch()
            if self.should_validate(state.epoch, self.max_epochs):
                self.validate()
        trainer.call_hook("after_train")

    def run_epoch(self) -> None:
        trainer = self.trainer
        trainer.call_hook("before_train_epoch")
        trainer.callbacks.restart_train_iters()
        trainer.optim_wrapper.initialize_count_status(
            trainer.model, trainer.state.batch_idx, self.epoch_length)
        for batch_idx, data_batch in enumerate(self.new_iterator(), trainer.state.batch_idx):
            self.run_iter(batch_idx, data_batch)
            trainer.interrupts.check(trainer.state.iter)  # before the next batch is drawn
        trainer.call_hook("after_train_epoch")
        trainer.state.epoch += 1
        trainer.state.batch_idx = 0


class IterBasedTrainLoop(BaseTrainLoop):
    """Train for ``max_iters`` batches, restarting the loader (and counting epochs) as it empties."""

    def __init__(self, trainer: Trainer, dataloader: Iterable, max_iters: int,
                 val_loop: ValLoop | None = None, val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: Sequence[tuple[int, int]] | None = None) -> None:
        super().__init__(trainer, dataloader, val_loop, val_begin, val_interval, dynamic_intervals)
        self._iterator: Iterator | None = None  # over the current pass; None between passes
        self.max_iters = max_iters

    max_epochs = property(lambda self: self.trainer.state.max_epochs)  # passes, settled by fit

    def run(self) -> None:
        trainer = self.trainer
        trainer.call_hook("before_train")
        trainer.call_hook("before_train_epoch")
        trainer.callbacks.restart_train_iters()
        trainer.optim_wrapper.initialize_count_status(trainer.model, trainer.iter, self.max_iters)
        trainer.model.train()
        state = trainer.state
        while state.iter < self.max_iters and not state.stop_training:
            trainer.interrupts.check(state.iter)  # after the last validation, before a batch
            self.run_iter(state.iter, self.next_batch())
            if self.should_validate(state.iter, self.max_iters):
                self.validate()
        trainer.call_hook("after_train_epoch")
        trainer.call_hook("after_train")

    def next_batch(self) -> Any:
        """The next batch, starting a new pass over the loader when the last one ran out."""
        if self._iterator is None:
            self._iterator = self.new_iterator()
        try:
            return next(self._iterator)
        except StopIteration:
            if self.trainer.state.batch_idx == 0:
                raise ValueError("train_dataloader yielded no batches") from None
            self.end_pass()
            return self.next_batch()

    def advance(self) -> None:
        """Count the batch; a pass over the loader ends with its last batch."""
        self.trainer.state.batch_idx += 1
        if self.trainer.state.batch_idx == self.epoch_length:
            self.end_pass()

    def end_pass(self) -> None:
        self.trainer.state.epoch += 1
        self.trainer.state.batch_idx = 0
        self._iterator = None


class _EvalLoop:
    """One pass over an evaluation loader, feeding the evaluator; shared by val and test."""

    stage = "val"

    def __init__(self, trainer: Trainer, dataloader: Iterable, evaluator: Evaluator) -> None:
        self.trainer = trainer
        self.dataloader = dataloader
        self.evaluator = evaluator
        loader_length(dataloader, f"{self.stage}_dataloader")

    def run(self) -> dict[str, Any]:
        trainer, stage = self.trainer, self.stage
        trainer.call_hook(f"before_{stage}")
        trainer.call_hook(f"before_{stage}_epoch")
        trainer.model.eval()
        self.evaluator.to(trainer.device)
        self.evaluator.reset()
        with preserve_rng(), torch.no_grad(), trainer.strategy.eval_context(trainer.model):
            for batch_idx, data_batch in enumerate(self.dataloader):
                self.run_iter(batch_idx, data_batch)
        metrics = self.evaluator.evaluate(dataset_size(self.dataloader))
        trainer.message_hub.update_scalars(
            {k: v for k, v in metrics.items() if isinstance(v, (int, float))}, prefix=f"{stage}/")
        trainer.call_hook(f"after_{stage}_epoch", metrics)
        trainer.call_hook(f"after_{stage}")
        return metrics

    def run_iter(self, batch_idx: int, data_batch: Any) -> None:
        trainer, stage = self.trainer, self.stage
        trainer.call_hook(f"before_{stage}_iter", batch_idx, data_batch)
        with trainer.autocast():
            outputs = getattr(trainer.wrapped_model, f"{stage}_step")(data_batch)
        self.evaluator.process(data_batch=data_batch, outputs=outputs)
        trainer.call_hook(f"after_{stage}_iter", batch_idx, data_batch, outputs)


class ValLoop(_EvalLoop):
    """Validation: ``model.val_step`` on every batch, metrics logged as ``val/<name>``."""

    stage = "val"


class TestLoop(_EvalLoop):
    """Testing: ``model.test_step`` on every batch, metrics logged as ``test/<name>``."""

    stage = "test"
