"""What a steady training iteration costs in the trainer's own Python code, counted, not timed.

On a small model the per-iteration Python work is the trainer's overhead over a raw loop
(``benchmarks/overhead.py`` times it). Timings are too noisy for a test; the number of calls
into ``trainer/`` and ``callbacks/`` functions is exact, so a change that adds per-iteration
work shows here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trainer.callbacks

from tests.conftest import ToyNet, toy_loader
from trainer import EpochBasedTrainLoop, IterBasedTrainLoop, Trainer

OURS = (str(Path(trainer.__file__).parent), str(Path(trainer.callbacks.__file__).parent))
# Calls into the trainer's code in one iteration that logs nothing, default callbacks on: the
# loop (run_iter, advance, interrupt check, validation check, next batch), two hook dispatches,
# the callbacks' iteration hooks, the model's train_step with the optimizer wrapper's context
# (entered and left) and update, which does the backward, step and zero_grad itself unless one
# of them is overridden. The logger and the checkpoint callback are not called on
# iterations where they have nothing to do, the scheduler callback not at all in a run without
# schedulers, and neither is a plain progress bar (it writes a line every tenth of an
# iteration-based run): with or without it, the same calls.
BUDGET = 20


def counting_loop(base, calls: dict[int, int]):
    """The built-in loop, counting the calls into the trainer's code of each iteration."""

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(OURS):
            calls[current[0]] = calls.get(current[0], 0) + 1

    current = [0]

    class Counting(base):
        def run_iter(self, batch_idx, data_batch):
            current[0] = self.trainer.iter
            sys.setprofile(profile)
            try:
                super().run_iter(batch_idx, data_batch)
            finally:
                sys.setprofile(None)

    return Counting


@pytest.mark.parametrize("bar", ["off", "on"])
@pytest.mark.parametrize("length", [{"max_epochs": 3}, {"max_iters": 30}])
def test_a_steady_iteration_stays_within_its_call_budget(capsys, tmp_path, length, bar):
    calls: dict[int, int] = {}
    base = EpochBasedTrainLoop if "max_epochs" in length else IterBasedTrainLoop
    trainer = Trainer(**length, work_dir=str(tmp_path), log_interval=4, seed=0,
                      train_loop=counting_loop(base, calls),
                      default_callbacks={"progress": {"mode": "plain"} if bar == "on" else None})
    trainer.fit(ToyNet(), toy_loader(n=80, shuffle=True))  # 10 batches an epoch
    logged = {json.loads(line)["iter"] - 1
              for line in (Path(trainer.log_dir) / "scalars.jsonl").read_text().splitlines()}
    # "Train: 12/30 [ 40%] ...": the bar's line on iteration 11 (the 12th).
    bar_lines = {int(line.split(": ")[1].split("/")[0]) - 1
                 for line in capsys.readouterr().err.splitlines() if line.startswith("Train: ")}
    assert (len(bar_lines) == 10) == (bar == "on" and "max_iters" in length)
    # The first iteration counts FLOPs, an epoch's last one ends the pass: not steady ones.
    steady = {i: n for i, n in calls.items()
              if i not in logged | bar_lines and i % 10 not in (0, 9)}
    assert len(steady) > 10
    assert max(steady.values()) <= BUDGET, steady
