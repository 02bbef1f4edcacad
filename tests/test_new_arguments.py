"""Arguments added for observability, loop variants, plateau schedules and sharded saving: each
mistake is refused when the object is built, with a message that says what would work."""

from __future__ import annotations

import pytest
import torch
from trainer.callbacks import CheckpointCallback, IterTimerCallback

from trainer import Trainer
from trainer.loops import IterBasedTrainLoop
from trainer.schedulers import ReduceOnPlateauLR


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda: IterTimerCallback(peak_flops=-1), ValueError,
     r"peak_flops must be a positive number of FLOP/s \(e.g. 312e12\), got -1"),
    (lambda: Trainer(max_iters=4, train_loop=dict(type=IterBasedTrainLoop,
                                                  dynamic_intervals=[(2, 0)])),
     ValueError, r"dynamic_intervals must be a list of \(milestone, interval\) pairs"),
    (lambda: ReduceOnPlateauLR(_optimizer(), monitor="loss", rule="bigger"), ValueError,
     r"rule must be one of \('less', 'greater'\)"),
    (lambda: CheckpointCallback(async_save="yes"), TypeError,
     "async_save must be True or False, got 'yes'"),
])
def test_bad_values_are_refused_when_built(build, error, match):
    with pytest.raises(error, match=match):
        build()
