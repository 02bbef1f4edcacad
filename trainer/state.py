"""The training counters, kept in one place that loops update and callbacks read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
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
