"""The logger and the checkpoint callback skip the iterations they would not act on: the lines
and files a run leaves are those of calling them every iteration, across loop kinds, intervals
that do not divide an epoch, the ``Exp name`` line and resumed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainer.callbacks import Callback, CheckpointCallback, LoggerCallback

from tests.conftest import ToyNet, toy_loader
from trainer import Trainer

EPOCH = 10  # batches: toy_loader(n=80), batch size 8


def logged_steps(trainer: Trainer) -> list[int]:
    lines = (Path(trainer.log_dir) / "scalars.jsonl").read_text().splitlines()
    return [json.loads(line)["iter"] for line in lines if json.loads(line)["mode"] == "train"]


def exp_name_lines(trainer: Trainer) -> int:
    text = (Path(trainer.log_dir) / f"{trainer.timestamp}.log").read_text()
    return text.count("\nExp name:")  # the header is the first line, without a newline before


def expected_log_steps(first: int, last: int, interval: int, epoch_based: bool) -> list[int]:
    """Steps (1-based iterations) ``first..last`` that log, by MMEngine's rule."""
    if epoch_based:  # counted inside the epoch, and each epoch's last batch
        return [s for s in range(first, last + 1)
                if ((s - 1) % EPOCH + 1) % interval == 0 or s % EPOCH == 0]
    return [s for s in range(first, last + 1) if s % interval == 0 or s == last]


@pytest.mark.parametrize("interval,exp_every", [(3, None), (4, 7), (25, 6)])
@pytest.mark.parametrize("epoch_based", [True, False], ids=["epochs", "iters"])
def test_log_lines_and_exp_names_land_where_every_iteration_would_put_them(
        tmp_path, interval, exp_every, epoch_based):
    length = {"max_epochs": 3} if epoch_based else {"max_iters": 27}
    trainer = Trainer(**length, work_dir=str(tmp_path), seed=0, log_interval=interval,
                      default_callbacks={"progress": None, "checkpoint": None,
                                         "logger": {"interval_exp_name": exp_every}})
    trainer.fit(ToyNet(), toy_loader(n=80, shuffle=True))
    last = 30 if epoch_based else 27
    assert logged_steps(trainer) == expected_log_steps(1, last, interval, epoch_based)
    assert exp_name_lines(trainer) == (last // exp_every if exp_every else 0)


@pytest.mark.parametrize("interval,save_begin", [(4, 0), (7, 10), (-1, 0)])
def test_iteration_checkpoints_are_saved_at_each_due_iteration_fresh_and_resumed(
        tmp_path, interval, save_begin):
    def run(max_iters: int, resume: bool) -> Trainer:
        ckpt = CheckpointCallback(interval=interval, by_epoch=False, max_keep_ckpts=-1,
                                  save_begin=save_begin)
        trainer = Trainer(max_iters=max_iters, work_dir=str(tmp_path), seed=0, log_interval=5,
                          resume=resume, default_callbacks={"progress": None, "checkpoint": ckpt})
        trainer.fit(ToyNet(), toy_loader(n=80, shuffle=True))
        return trainer

    first = run(13, resume=False)
    second = run(31, resume=True)
    # Both runs' files stay (a resume continues the run): each saved at its own due iterations.
    saved = sorted(int(p.stem.split("_")[1]) for p in tmp_path.glob("iter_*.pth"))
    due = [n for first_n, last in ((1, 13), (14, 31)) for n in range(first_n, last + 1)
           if n >= save_begin and ((interval > 0 and n % interval == 0) or n == last)]
    assert saved == due
    assert logged_steps(second) == expected_log_steps(14, 31, 5, epoch_based=False)
    assert logged_steps(first) == expected_log_steps(1, 13, 5, epoch_based=False)


class EveryIterationLogger(LoggerCallback):
    """A user's logger that overrides ``after_train_iter`` alone: called on every iteration."""

    def __init__(self, seen: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen = seen

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        self.seen.append(trainer.iter)
        super().after_train_iter(trainer, batch_idx, data_batch, outputs)


class Seen(Callback):
    def __init__(self, seen: list[int]) -> None:
        super().__init__("LOWEST")
        self.seen = seen

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        self.seen.append(trainer.iter)


def test_a_subclass_overriding_after_train_iter_and_other_callbacks_see_every_iteration(
        work_dir):
    by_logger: list[int] = []
    by_other: list[int] = []
    trainer = Trainer(max_epochs=2, work_dir=work_dir, log_interval=4, callbacks=[Seen(by_other)],
                      default_callbacks={"progress": None, "logger": EveryIterationLogger(
                          by_logger, interval=4)})
    trainer.fit(ToyNet(), toy_loader(n=80))
    assert by_logger == by_other == list(range(2 * EPOCH))
    assert logged_steps(trainer) == expected_log_steps(1, 20, 4, epoch_based=True)


class SaysNothing(Callback):
    """A callback whose ``skippable_train_iters`` forgets to return its count."""

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        pass

    def skippable_train_iters(self, trainer, batch_idx):
        (98 - trainer.iter) % 100  # the missing return is the mistake


def test_a_count_that_is_not_an_int_is_refused_at_the_first_iteration(work_dir):
    trainer = Trainer(max_iters=5, work_dir=work_dir, callbacks=[SaysNothing()],
                      default_callbacks={"progress": None})
    with pytest.raises(TypeError, match=r"SaysNothing\.skippable_train_iters must return an int"
                                        r".*got None"):
        trainer.fit(ToyNet(), toy_loader())
    assert trainer.iter == 0  # it stopped in the first iteration
