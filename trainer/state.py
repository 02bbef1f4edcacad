"""The training counters, kept in one place that loops update and callbacks read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TrainState:
    """Counters of a run, with MMEngine's meanings.

    Attributes:
        epoch: 0-based index of the current epoch while it runs; once ``after_train_epoch`` has
            run it counts completed epochs (so validation sees the completed count). In
            iteration-based training it counts completed passes over the training loader.
        iter: 0-based index of the current training iteration inside ``before_train_iter`` /
            ``after_train_iter``; incremented right after ``after_train_iter``, so it counts
            completed iterations (batches).
        max_epochs: epochs of the run (``None`` in iteration-based training over a loader
            without ``len``).
        max_iters: iterations of the run (epochs x batches in epoch-based training).
        batch_idx: batches of the current epoch already consumed; the data position for resume.
        stop_training: set by a callback to end training after the current iteration
            (iteration-based) or epoch (epoch-based).
    """

    epoch: int = 0
    iter: int = 0
    max_epochs: int | None = None
    max_iters: int | None = None
    batch_idx: int = 0
    stop_training: bool = False

    def progress(self, *, iter_done: bool = False, epoch_done: bool = False) -> dict[str, int]:
        """Completed epochs, iterations and batches of the current epoch: what a checkpoint records.

        Inside ``after_train_iter`` the current iteration is complete although ``iter`` is only
        incremented after the hook (MMEngine's counter convention): pass ``iter_done=True``;
        likewise ``epoch_done=True`` inside the epoch-based ``after_train_epoch``.

        Example:
            >>> TrainState(epoch=1, iter=7, batch_idx=3).progress(iter_done=True)
            {'epoch': 1, 'iter': 8, 'batch_idx': 3}
        """
        if epoch_done:
            return {"epoch": self.epoch + 1, "iter": self.iter, "batch_idx": 0}
        return {"epoch": self.epoch, "iter": self.iter + iter_done, "batch_idx": self.batch_idx}


def run_length(max_epochs: int | None, max_iters: int | None,
               epoch_length: int | None) -> tuple[int | None, int]:
    """``(max_epochs, max_iters)`` of a run given one of them and the batches per epoch.

    Epoch-based runs last ``max_epochs * epoch_length`` iterations; iteration-based runs make
    ``ceil(max_iters / epoch_length)`` passes (``None`` for a loader without ``len``).

    Example:
        >>> run_length(3, None, 10), run_length(None, 25, 10), run_length(None, 25, None)
        ((3, 30), (3, 25), (None, 25))
    """
    if max_epochs is not None:
        if epoch_length is None:
            raise ValueError(
                "epoch-based training needs a train_dataloader with len(); use max_iters= for "
                "an IterableDataset")
        return max_epochs, max_epochs * epoch_length
    return (None if epoch_length is None else -(-max_iters // epoch_length)), max_iters
