"""Loop semantics against MMEngine's: hook order, counters, validation schedule, epochs."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.graph import get_gradient_edge
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset
from trainer.callbacks import HOOK_NAMES, Callback

from tests.conftest import ToyNet, accuracy, toy_dataset, toy_loader
from trainer import EpochBasedTrainLoop, IterBasedTrainLoop, Trainer

QUIET = {"progress": None, "logger": None, "checkpoint": None}


def _make_recorder():
    """A callback that records (hook, epoch, iter, batch_idx) at every hook point."""
    calls: list[tuple] = []

    def record(name):
        def hook(self, trainer, batch_idx=None, **kwargs):
            calls.append((name, trainer.epoch, trainer.iter, batch_idx))
        return hook

    hooks = {h: record(h) for h in HOOK_NAMES if not h.endswith("_checkpoint")}
    recorder = type("Recorder", (Callback,), hooks)()
    recorder.calls = calls
    return recorder


def names(calls):
    return [c[0] for c in calls]


def eval_block(stage, n):
    inner = [f"before_{stage}_iter", f"after_{stage}_iter"] * n
    return [f"before_{stage}", f"before_{stage}_epoch", *inner, f"after_{stage}_epoch",
            f"after_{stage}"]


def test_epoch_based_hook_order_and_counters(work_dir):
    rec = _make_recorder()
    trainer = Trainer(max_epochs=2, work_dir=work_dir, callbacks=[rec], val_evaluator=accuracy(),
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=24), toy_loader(n=16))  # 3 train, 2 val batches
    epoch = ["before_train_epoch", *["before_train_iter", "after_train_iter"] * 3,
             "after_train_epoch"]
    assert names(rec.calls) == ["before_run", "before_train",
                                *epoch, *eval_block("val", 2), *epoch, *eval_block("val", 2),
                                "after_train", "after_run"]
    iters = [c for c in rec.calls if c[0] == "before_train_iter"]
    assert [(e, i, b) for _, e, i, b in iters] == [
        (0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 3, 0), (1, 4, 1), (1, 5, 2)]
    assert [c[1:3] for c in rec.calls if c[0] == "after_train_epoch"] == [(0, 3), (1, 6)]
    assert [c[1:3] for c in rec.calls if c[0] == "before_val"] == [(1, 3), (2, 6)]
    assert (trainer.epoch, trainer.iter, trainer.max_iters) == (2, 6, 6)


def test_iter_based_hook_order_counters_and_final_validation(work_dir):
    rec = _make_recorder()
    trainer = Trainer(max_iters=5, val_interval=2, work_dir=work_dir, callbacks=[rec],
                      val_evaluator=accuracy(), default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16), toy_loader(n=8))  # 2 train batches, 1 val batch
    it = ["before_train_iter", "after_train_iter"]
    val = eval_block("val", 1)
    assert names(rec.calls) == ["before_run", "before_train", "before_train_epoch",
                                *it, *it, *val, *it, *it, *val, *it, *val,
                                "after_train_epoch", "after_train", "after_run"]
    # batch_idx is the global iteration; epoch counts completed passes over the loader.
    assert [(c[3], c[2], c[1]) for c in rec.calls if c[0] == "before_train_iter"] == [
        (0, 0, 0), (1, 1, 0), (2, 2, 1), (3, 3, 1), (4, 4, 2)]
    assert [c[2] for c in rec.calls if c[0] == "before_val"] == [2, 4, 5]
    assert (trainer.iter, trainer.epoch, trainer.max_epochs) == (5, 2, 3)


@pytest.mark.parametrize(("val_begin", "val_interval", "expected"), [
    (1, 1, [1, 2, 3, 4, 5]), (1, 2, [2, 4, 5]), (3, 1, [3, 4, 5]), (4, 3, [5]),
])
def test_epoch_validation_schedule(work_dir, val_begin, val_interval, expected):
    rec = _make_recorder()
    trainer = Trainer(max_epochs=5, val_begin=val_begin, val_interval=val_interval,
                      work_dir=work_dir, callbacks=[rec], val_evaluator=accuracy(), default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=8), toy_loader(n=8))
    assert [c[1] for c in rec.calls if c[0] == "before_val"] == expected


@pytest.mark.parametrize("length", [{"max_iters": 6}, {"max_epochs": 3}])
@pytest.mark.parametrize("sampler_seed", [{}, None])  # the callback is a no-op: the loop sets it
def test_loops_set_sampler_epoch_each_pass(work_dir, length, sampler_seed):
    data = toy_dataset(n=16)
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    seen_epochs = []
    original = sampler.set_epoch
    sampler.set_epoch = lambda e: (seen_epochs.append(e), original(e))
    orders = []

    class Order(Callback):
        def before_train_iter(self, trainer, batch_idx, data_batch=None):
            orders.append(data_batch[1].tolist())

    trainer = Trainer(**length, work_dir=work_dir, callbacks=[Order()],
                      default_callbacks={**QUIET, "sampler_seed": sampler_seed})
    trainer.fit(ToyNet(), DataLoader(data, batch_size=8, sampler=sampler))
    assert seen_epochs == [0, 1, 2]
    passes = [orders[0] + orders[1], orders[2] + orders[3], orders[4] + orders[5]]
    assert passes[0] != passes[1] != passes[2]
    assert trainer.epoch == 3


class Stream(IterableDataset):
    def __init__(self, n):
        self.data = toy_dataset(n)

    def __iter__(self):
        return iter(self.data)


def test_iterable_dataset_in_iteration_loop(work_dir):
    trainer = Trainer(max_iters=7, work_dir=work_dir, default_callbacks=QUIET)
    trainer.fit(ToyNet(), DataLoader(Stream(16), batch_size=4))
    assert (trainer.iter, trainer.epoch, trainer.max_epochs) == (7, 1, None)


def test_iterable_dataset_rejected_by_epoch_loop(work_dir):
    trainer = Trainer(max_epochs=1, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(ValueError, match="needs a train_dataloader with len"):
        trainer.fit(ToyNet(), DataLoader(Stream(16), batch_size=4))


@pytest.mark.parametrize("kind", [{"max_epochs": 1}, {"max_iters": 3}])
def test_empty_loader_is_a_clear_error(work_dir, kind):
    trainer = Trainer(**kind, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(ValueError, match="train_dataloader has no batches"):
        trainer.fit(ToyNet(), toy_loader(n=4, batch_size=8, drop_last=True))


def test_empty_iterable_dataset_is_a_clear_error(work_dir):
    trainer = Trainer(max_iters=3, work_dir=work_dir, default_callbacks=QUIET)
    with pytest.raises(ValueError, match="yielded no batches"):
        trainer.fit(ToyNet(), DataLoader(Stream(0), batch_size=4))


class StopAt(Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def after_train_iter(self, trainer, batch_idx, data_batch=None, outputs=None):
        if trainer.iter == self.at:
            trainer.stop_training = True


def test_stop_training_iteration_based_ends_after_current_iter(work_dir):
    rec = _make_recorder()
    trainer = Trainer(max_iters=50, val_interval=100, work_dir=work_dir,
                      callbacks=[StopAt(3), rec], val_evaluator=accuracy(),
                      default_callbacks={"progress": None, "logger": None})
    trainer.fit(ToyNet(), toy_loader(), toy_loader(n=8))
    assert trainer.iter == 4
    assert [c[2] for c in rec.calls if c[0] == "before_val"] == [4]  # validation as usual
    assert (tmp := __import__("pathlib").Path(work_dir)).joinpath("iter_4.pth").exists(), tmp


def test_stop_training_epoch_based_finishes_the_epoch(work_dir):
    trainer = Trainer(max_epochs=5, work_dir=work_dir, callbacks=[StopAt(14)],
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=80, batch_size=8))  # 10 batches per epoch
    assert (trainer.epoch, trainer.iter) == (2, 20)


def test_custom_train_loop_class_is_used(work_dir):
    class CountingLoop(EpochBasedTrainLoop):
        epochs_run = 0

        def run_epoch(self):
            type(self).epochs_run += 1
            super().run_epoch()

    trainer = Trainer(max_epochs=3, work_dir=work_dir, train_loop=CountingLoop,
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=16))
    assert CountingLoop.epochs_run == 3


def test_wrong_loop_kind_is_rejected():
    with pytest.raises(TypeError, match="train_loop must be a subclass of BaseTrainLoop"):
        Trainer(max_iters=3, train_loop=object)
    with pytest.raises(TypeError, match="val_loop must be a subclass of ValLoop"):
        Trainer(max_iters=3, val_loop=IterBasedTrainLoop)


@pytest.mark.parametrize(("length", "loop", "expected"), [
    ({"max_epochs": 9}, EpochBasedTrainLoop, [3, 4, 6, 8, 9]),
    ({"max_iters": 9}, IterBasedTrainLoop, [3, 4, 6, 8, 9]),
])
def test_dynamic_intervals_are_an_argument_of_the_train_loop(work_dir, length, loop, expected):
    validated = []

    class Record(Callback):
        def after_val_epoch(self, trainer, metrics=None):
            validated.append(trainer.epoch if "max_epochs" in length else trainer.iter)

    trainer = Trainer(**length, work_dir=work_dir, val_interval=3, default_callbacks=QUIET,
                      val_evaluator=accuracy(), callbacks=[Record()],
                      train_loop=dict(type=loop, dynamic_intervals=[(4, 2), (8, 1)]))
    trainer.fit(ToyNet(), toy_loader(n=8), toy_loader(n=8))  # one batch an epoch
    assert validated == expected
    assert type(trainer.train_loop) is loop


@pytest.mark.parametrize(("train_loop", "error", "match"), [
    (dict(type=IterBasedTrainLoop, dynamic_intervals=[(4, 2), (2, 1)]), ValueError,
     "dynamic_intervals must be a list of .* increasing milestones"),
    (dict(type=IterBasedTrainLoop, dynamic=[(4, 2)]), TypeError,
     "train_loop: IterBasedTrainLoop does not take 'dynamic'"),
    (dict(type="trainer.loops.ValLoop"), TypeError, "train_loop must be a subclass of"),
])
def test_bad_train_loop_options_fail_when_the_trainer_is_built(train_loop, error, match):
    with pytest.raises(error, match=match):
        Trainer(max_iters=3, train_loop=train_loop)


def test_validation_does_not_move_training_rng(work_dir):
    """Same weights with and without validation: shuffling and dropout draw identically."""
    def run(with_val):
        torch.manual_seed(0)
        model = ToyNet(dropout=0.3)
        trainer = Trainer(max_epochs=3, work_dir=work_dir, seed=1, default_callbacks=QUIET,
                          val_evaluator=accuracy())
        trainer.fit(model, toy_loader(shuffle=True),
                    toy_loader(n=16, shuffle=True) if with_val else None)
        return model.state_dict()

    with_val, without = run(True), run(False)
    assert all(torch.equal(with_val[k], without[k]) for k in with_val)


@pytest.mark.parametrize(("kind", "chain"), [
    ({"max_epochs": 1}, ["fit", "run", "run_epoch", "run_iter", "train_step", "update_params"]),
    ({"max_iters": 2}, ["fit", "run", "run_iter", "train_step", "update_params"]),
])
def test_few_frames_from_fit_to_backward(work_dir, monkeypatch, kind, chain):
    """The data path stays short: fit -> loop -> train_step -> update_params -> loss.backward."""
    import traceback

    seen: list[list[str]] = []
    original = torch.Tensor.backward

    def spy(self, *args, **kwargs):
        names = [frame.name for frame in traceback.extract_stack()[:-1]]
        seen.append(names[len(names) - 1 - names[::-1].index("fit"):])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    Trainer(**kind, work_dir=work_dir, default_callbacks=QUIET).fit(ToyNet(), toy_loader(n=16))
    assert seen and all(frames == chain for frames in seen)


class CountsAccumulations(Callback):
    """Puts a hook on every parameter's gradient accumulator when training starts, without
    holding the accumulators: the hook fires on later iterations only if the trainer keeps
    them (and with them the hook) alive."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def before_train(self, trainer) -> None:
        for param in trainer.model.parameters():
            get_gradient_edge(param).node.register_hook(self.count_one)

    def count_one(self, *grads) -> None:
        self.count += 1


@pytest.mark.parametrize(("first", "total", "iters"), [  # first: the run resumed from
    ({"max_iters": 3}, {"max_iters": 5}, (3, 5)), ({"max_epochs": 1}, {"max_epochs": 2}, (2, 4))])
@pytest.mark.parametrize("resumed", [False, True])
def test_each_iteration_reuses_the_gradient_accumulators(work_dir, first, total, iters, resumed):
    """Autograd rebuilds a parameter's accumulator when no graph holds it; the trainer keeps
    one per parameter for the run (as a raw loop's ``loss`` variable does), and lets go after."""
    model, loader = ToyNet(), toy_loader(n=16)  # 2 batches, 4 parameters
    if resumed:
        Trainer(**first, work_dir=work_dir, default_callbacks=QUIET | {"checkpoint": {}}).fit(
            model, loader)
    done, iters = (iters[0] if resumed else 0), iters[1]
    counter = CountsAccumulations()
    Trainer(**total, work_dir=work_dir, resume=resumed, callbacks=[counter],
            default_callbacks=QUIET | {"checkpoint": {}}).fit(model, loader)
    assert counter.count == 4 * (iters - done)
    for param in model.parameters():  # fit is over: nothing holds them any more
        get_gradient_edge(param).node.register_hook(counter.count_one)
    model(torch.randn(2, 8), torch.tensor([0, 1]), mode="loss")["loss"].backward()
    assert counter.count == 4 * (iters - done)
