"""Exact resume: N iterations in one go equal k iterations, a stop, and a resume to N."""

from __future__ import annotations

import random

import pytest
import torch
from trainer.callbacks import Callback

from tests.conftest import ToyNet, toy_loader
from tests.trainer.checkpoint.helpers import EPOCH_LEN, assert_same_weights, run
from trainer import Trainer
from trainer.checkpoint.io import load_checkpoint


@pytest.mark.parametrize(("length", "k"), [
    ({"max_epochs": 4}, 7),      # mid-epoch, inside an accumulation window
    ({"max_epochs": 4}, 10),     # at an epoch boundary, right before a validation
    ({"max_iters": 17}, 7),      # mid-pass
    ({"max_iters": 17}, 10),     # at the end of a pass over the loader
    ({"max_iters": 17}, 12),     # right before a validation
])
def test_resume_is_bit_identical(tmp_path, length, k):
    straight, _ = run(tmp_path / "straight", length)
    run(tmp_path / "first", length, ckpt_interval=k)
    resumed, trainer = run(tmp_path / "resumed", length,
                           resume_from=str(tmp_path / "first" / f"iter_{k}.pth"))
    assert_same_weights(straight, resumed)
    assert trainer.iter == (length.get("max_iters") or 4 * EPOCH_LEN)


class SaveAfterFirstValidation(Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def after_val_epoch(self, trainer, metrics=None):
        if not self.path.exists():
            trainer.save_checkpoint(str(self.path))


@pytest.mark.parametrize("length", [{"max_epochs": 4}, {"max_iters": 17}])
def test_resume_right_after_a_validation_is_bit_identical(tmp_path, length):
    straight, _ = run(tmp_path / "straight", length)
    path = tmp_path / "after_val.pth"
    run(tmp_path / "first", length, callbacks=[SaveAfterFirstValidation(path)])
    assert load_checkpoint(str(path))["meta"]["iter"] == (10 if "max_epochs" in length else 6)
    resumed, _ = run(tmp_path / "resumed", length, resume_from=str(path))
    assert_same_weights(straight, resumed)


def test_checkpoint_mid_epoch_holds_the_data_position(tmp_path):
    run(tmp_path / "first", {"max_epochs": 2}, ckpt_interval=7)
    ckpt = load_checkpoint(str(tmp_path / "first" / "iter_7.pth"))
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["iter"], ckpt["meta"]["batch_idx"]) == (1, 7, 2)
    (position,) = ckpt["data"]
    # How to draw the epoch's permutation again, never the permutation itself.
    assert set(position) == {"seed", "batches", "samples"}
    assert (position["batches"], position["samples"]) == (2, 16)
    assert ckpt["optimizer"]["inner_count"] == 2  # inside the accumulation window
    assert torch.load(str(tmp_path / "first" / "iter_7.pth"), weights_only=True)


def test_resumed_run_skips_at_the_sampler(tmp_path):
    """The samples already trained on are never loaded again."""
    run(tmp_path / "first", {"max_epochs": 2}, ckpt_interval=7)
    loaded: list[int] = []

    class Spy(torch.utils.data.Dataset):
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            loaded.append(i)
            return self.data[i]

    model = ToyNet(dropout=0.3)
    trainer = Trainer(max_epochs=2, work_dir=str(tmp_path / "resumed"), resume=True,
                      load_from=str(tmp_path / "first" / "iter_7.pth"),
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9),
                                         accumulative_counts=3),
                      param_scheduler=[dict(type="LinearLR", start_factor=0.2, by_epoch=False,
                                            end=4),
                                       dict(type="MultiStepLR", milestones=[2], by_epoch=True)],
                      default_callbacks={"progress": None, "logger": None, "checkpoint": None})
    data = toy_loader(n=40).dataset
    trainer.fit(model, torch.utils.data.DataLoader(Spy(data), batch_size=8, shuffle=True))
    assert len(loaded) == 3 * 8  # only the 3 batches of epoch 2 that were left
    assert len(set(loaded)) == len(loaded)


def test_resuming_a_finished_run_does_nothing_and_says_so(tmp_path):
    model, first = run(tmp_path / "first", {"max_iters": 8})
    final = first.resolve_ckpt_path("last")
    with pytest.warns(UserWarning, match="already finished"):
        again, trainer = run(tmp_path / "again", {"max_iters": 8}, resume_from=final)
    assert trainer.iter == 8
    assert_same_weights(model, again)


def test_resuming_with_a_larger_max_iters_continues_to_the_new_end(tmp_path):
    _, first = run(tmp_path / "first", {"max_iters": 8})
    _, trainer = run(tmp_path / "longer", {"max_iters": 12},
                     resume_from=first.resolve_ckpt_path("last"))
    assert trainer.iter == 12


def test_resume_true_without_checkpoint_starts_fresh(tmp_path):
    _, trainer = run(tmp_path / "fresh", {"max_iters": 3}, resume_from=None)
    resumed_cfg = Trainer(max_iters=3, work_dir=str(tmp_path / "empty"), resume=True,
                          default_callbacks={"progress": None, "logger": None})
    resumed_cfg.fit(ToyNet(), toy_loader())
    assert resumed_cfg.iter == 3 and trainer.iter == 3


def test_resume_true_picks_the_latest_checkpoint_in_work_dir(tmp_path):
    work_dir = str(tmp_path / "run")
    _, first = run(work_dir, {"max_iters": 8})
    _, second = run(work_dir, {"max_iters": 12}, resume_from=None, resume=True)
    assert second.iter == 12 and first.iter == 8


def test_load_from_without_resume_loads_weights_only(tmp_path):
    model, first = run(tmp_path / "first", {"max_iters": 8})
    trainer = Trainer(max_iters=1, work_dir=str(tmp_path / "second"),
                      load_from=first.resolve_ckpt_path("last"),
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)),
                      default_callbacks={"progress": None, "logger": None})
    fresh = ToyNet(dropout=0.3)
    trainer.fit(fresh, toy_loader())
    assert trainer.iter == 1  # counters were not restored
    assert_same_weights(model, fresh)  # lr 0: the loaded weights are unchanged


def test_a_checkpoint_records_the_progress_it_is_given(tmp_path):
    from trainer.checkpoint.io import join

    class SaveAt(Callback):
        def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
            if trainer.iter == 2:  # the third iteration is done, trainer.iter is still 2
                trainer.save_checkpoint(join(trainer.work_dir, "as_is.pth"))
                trainer.save_checkpoint(join(trainer.work_dir, "done.pth"),
                                        progress=trainer.state.progress(iter_done=True))

    Trainer(max_iters=4, work_dir=str(tmp_path), callbacks=[SaveAt()],
            default_callbacks={"progress": None, "logger": None}).fit(ToyNet(), toy_loader(n=40))
    as_is = load_checkpoint(str(tmp_path / "as_is.pth"))["meta"]
    done = load_checkpoint(str(tmp_path / "done.pth"))["meta"]
    assert (as_is["iter"], as_is["batch_idx"]) == (2, 3)  # batch_idx counts consumed batches
    assert (done["iter"], done["batch_idx"]) == (3, 3)


@pytest.mark.parametrize("layout", ["state_dict_key", "bare_state_dict"])
def test_weights_only_file_loads_weights_and_refuses_to_resume(tmp_path, layout):
    source = ToyNet()
    weights = source.state_dict()
    path = tmp_path / "published.pth"
    torch.save({"state_dict": weights} if layout == "state_dict_key" else weights, path)
    loaded = ToyNet()
    trainer = Trainer(max_iters=2, work_dir=str(tmp_path / "load"), load_from=str(path),
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)),
                      default_callbacks={"progress": None, "logger": None})
    trainer.fit(loaded, toy_loader())
    assert trainer.iter == 2  # counters started at 0
    assert_same_weights(source, loaded)

    untouched = ToyNet()
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    resuming = Trainer(max_iters=2, work_dir=str(tmp_path / "resume"), load_from=str(path),
                       resume=True, default_callbacks={"progress": None, "logger": None})
    with pytest.raises(ValueError, match=rf"{path} holds weights only.*resume=False.*loads its"):
        resuming.fit(untouched, toy_loader())
    assert all(torch.equal(before[k], v) for k, v in untouched.state_dict().items())
    assert resuming.iter == 0


def test_resume_says_where_it_resumed_from(tmp_path, capsys):
    work_dir = str(tmp_path / "run")
    run(work_dir, {"max_iters": 8}, ckpt_interval=4)
    capsys.readouterr()
    run(work_dir, {"max_iters": 12}, resume=True)
    assert f"resumed from {work_dir}/iter_8.pth at epoch 1, iteration 8" in capsys.readouterr().out


def test_resume_with_nothing_to_resume_warns_and_starts_from_scratch(tmp_path):
    with pytest.warns(UserWarning, match=rf"no checkpoint in {tmp_path}/empty: starting from "
                                         "scratch"):
        _, trainer = run(str(tmp_path / "empty"), {"max_iters": 3}, resume=True)
    assert trainer.iter == 3


class DrawsPython(Callback):
    """Draws from Python's ``random`` every iteration, as an augmentation choice would."""

    def __init__(self):
        super().__init__()
        self.draws = {}

    def before_train_iter(self, trainer, batch_idx, data_batch=None):
        self.draws[trainer.iter] = random.random()


@pytest.mark.parametrize("length", [{"max_epochs": 4}, {"max_iters": 17}])
@pytest.mark.parametrize("saved_as", ["tensor", "list"])
def test_python_random_continues_exactly_after_a_resume(tmp_path, length, saved_as):
    # Python's state is saved as one int64 tensor (625 ints pickled one by one cost a
    # checkpoint about a thousand pickler calls); a checkpoint holding the list still loads.
    straight = DrawsPython()
    run(tmp_path / "straight", length, callbacks=[straight])
    run(tmp_path / "first", length, ckpt_interval=7, callbacks=[DrawsPython()])
    path = tmp_path / "first" / "iter_7.pth"
    checkpoint = torch.load(path, weights_only=True)
    version, internal, gauss = checkpoint["rng"][0]["python"]
    assert isinstance(internal, torch.Tensor) and internal.dtype == torch.int64
    if saved_as == "list":
        checkpoint["rng"][0]["python"] = [version, internal.tolist(), gauss]
        torch.save(checkpoint, path)
    resumed = DrawsPython()
    run(tmp_path / "resumed", length, resume_from=str(path), callbacks=[resumed])
    assert sorted(resumed.draws) == list(range(7, 17 if "max_iters" in length else 20))
    assert resumed.draws == {i: straight.draws[i] for i in resumed.draws}
