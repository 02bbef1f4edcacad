"""Hooks written the way OpenMMLab projects write them run on the Trainer after an import rewrite.

Each hook below is MMEngine code (``runner`` argument, ``Optional[dict]`` signatures, ``assert``
inside, ``@HOOKS.register_module()``), with only its imports pointed at
``trainer.compat.mmengine``. The tests train for real and check numbers the hooks produced.
"""
# The hooks keep MMEngine's spelling (typing.Optional, unused loop names): that is the point.
# ruff: noqa: UP007, UP045, B007

from __future__ import annotations

import inspect
import json
import logging
from typing import Optional, Union

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tests.conftest import ToyNet, toy_loader
from trainer import BaseModel, Trainer
from trainer.compat.mmengine import HOOKS, Hook, is_model_wrapper

DATA_BATCH = Optional[Union[dict, tuple, list]]
QUIET = {"progress": None}


def run(hooks, model=None, loader=None, **kwargs):
    torch.manual_seed(0)
    trainer = Trainer(callbacks=hooks, default_callbacks={**QUIET, "checkpoint": None},
                      **{"max_epochs": 2, "work_dir": "memory://mmengine_hooks", **kwargs})
    trainer.fit(model or ToyNet(), loader or toy_loader())
    return trainer


# --------------------------------------------------------------------------- mean teacher
@HOOKS.register_module()
class MeanTeacherHook(Hook):
    """mmdet's semi-supervised hook: the teacher follows the student by EMA."""

    def __init__(self, momentum: float = 0.001, interval: int = 1, skip_buffer=True) -> None:
        assert 0 < momentum < 1
        self.momentum = momentum
        self.interval = interval
        self.skip_buffers = skip_buffer

    def before_train(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        assert hasattr(model, 'teacher')
        assert hasattr(model, 'student')
        if runner.iter == 0:
            self.momentum_update(model, 1)

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if (runner.iter + 1) % self.interval != 0:
            return
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        self.momentum_update(model, self.momentum)

    def momentum_update(self, model: nn.Module, momentum: float) -> None:
        for (src_name, src_parm), (dst_name, dst_parm) in zip(
                model.student.named_parameters(), model.teacher.named_parameters()):
            dst_parm.data.mul_(1 - momentum).add_(src_parm.data, alpha=momentum)


class SemiNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.teacher.requires_grad_(False)

    def forward(self, x, y=None, mode="tensor"):
        logits = self.student(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits

    def configure_optimizers(self):
        return torch.optim.SGD(self.student.parameters(), lr=0.1)


class RecordStudent(Hook):
    def __init__(self):
        self.snapshots = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.snapshots.append([p.detach().clone() for p in runner.model.student.parameters()])


def test_mean_teacher_hook_averages_the_student_every_interval():
    record, momentum, interval = RecordStudent(), 0.2, 3
    model = SemiNet()
    expected = [p.detach().clone() for p in model.student.parameters()]  # copied at iter 0
    trainer = run([MeanTeacherHook(momentum=momentum, interval=interval), record], model=model)
    assert trainer.iter == 24 and len(record.snapshots) == 24
    for i, student in enumerate(record.snapshots):
        if (i + 1) % interval == 0:
            expected = [(1 - momentum) * t + momentum * s for t, s in zip(expected, student)]
    for got, want in zip(model.teacher.parameters(), expected):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(next(model.teacher.parameters()), next(model.student.parameters()))


# --------------------------------------------------------------------------- invalid loss
class CheckInvalidLossHook(Hook):
    """MMEngine's own hook: assert every ``interval`` iterations that the loss is finite."""

    def __init__(self, interval: int = 50) -> None:
        self.interval = interval
        self.checked: list[int] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.checked.append(runner.iter)
            assert torch.isfinite(outputs['loss']), \
                runner.logger.info('loss become infinite or NaN!')


def poisoned_loader(first_bad: int) -> DataLoader:
    data = toy_loader().dataset
    x = data.tensors[0].clone()
    x[first_bad:] = float("nan")
    return DataLoader(torch.utils.data.TensorDataset(x, data.tensors[1]), batch_size=8)


def let_nonfinite_through() -> dict:
    """Keep the Trainer's own non-finite check (where it exists) out of the hook's way."""
    return ({"on_nonfinite": "ignore"}
            if "on_nonfinite" in inspect.signature(Trainer).parameters else {})


def test_invalid_loss_hook_checks_every_n_iterations_and_stops_at_the_first_bad_check():
    hook = CheckInvalidLossHook(interval=4)
    run([hook])
    assert hook.checked == [3, 7, 11, 15, 19, 23]

    hook = CheckInvalidLossHook(interval=4)
    with pytest.raises(AssertionError):  # samples 44.. are NaN: batch 5 is the first bad one
        run([hook], loader=poisoned_loader(44), **let_nonfinite_through())
    assert hook.checked == [3, 7]


# --------------------------------------------------------------------------- pipeline switch
class TaggedData(Dataset):
    """A data set whose ``pipeline`` (as in OpenMMLab data sets) decides what a sample holds."""

    def __init__(self):
        self.base = toy_loader().dataset
        self.pipeline = lambda x: {"x": x, "tag": 0}

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return {**self.pipeline(x), "y": y}


def strong_pipeline(x):
    return {"x": 2 * x, "tag": 1}


class SwitchNet(ToyNet):
    use_l1 = False

    def forward(self, x, y=None, tag=None, mode="tensor"):
        logits = self.body(x)
        if mode != "loss":
            return super().forward(x, y, mode)
        losses = {"loss_cls": nn.functional.cross_entropy(logits, y)}
        if self.use_l1:
            losses["loss_l1"] = logits.abs().mean()
        return losses


class PipelineSwitchHook(Hook):
    """mmdet's ``PipelineSwitchHook`` and YOLOX's mode switch: new pipeline and loss at an epoch."""

    def __init__(self, switch_epoch, switch_pipeline) -> None:
        self.switch_epoch = switch_epoch
        self.switch_pipeline = switch_pipeline
        self._restart_dataloader = False

    def before_train_epoch(self, runner):
        epoch = runner.epoch
        train_loader = runner.train_loop.dataloader
        if epoch >= self.switch_epoch and not self._restart_dataloader:
            train_loader.dataset.pipeline = self.switch_pipeline
            model = runner.model
            if is_model_wrapper(model):
                model = model.module
            model.use_l1 = True
            if hasattr(train_loader, 'persistent_workers') and train_loader.persistent_workers:
                train_loader._DataLoader__initialized = False
                train_loader._iterator = None
            self._restart_dataloader = True


class RecordBatches(Hook):
    def __init__(self):
        self.tags, self.loss_keys = {}, {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.tags.setdefault(runner.epoch, set()).update(data_batch["tag"].tolist())
        self.loss_keys.setdefault(runner.epoch, set()).update(outputs)


@pytest.mark.parametrize("workers", [0, 2])
def test_pipeline_switch_hook_changes_data_and_loss_from_its_epoch(workers):
    record = RecordBatches()
    loader = DataLoader(TaggedData(), batch_size=16, num_workers=workers,
                        persistent_workers=workers > 0)
    run([PipelineSwitchHook(2, strong_pipeline), record], model=SwitchNet(), loader=loader,
        max_epochs=4)
    assert record.tags == {0: {0}, 1: {0}, 2: {1}, 3: {1}}
    assert record.loss_keys[1] == {"loss", "loss_cls"}
    assert record.loss_keys[2] == record.loss_keys[3] == {"loss", "loss_cls", "loss_l1"}


# --------------------------------------------------------------------------- precise BN
class PreciseBNHook(Hook):
    """mmpretrain's idea: after an epoch, recompute BatchNorm statistics over the train data."""

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_epoch(self, runner) -> None:
        if not self.every_n_epochs(runner, self.interval):
            return
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        bn_layers = [m for m in model.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        assert bn_layers, 'no BatchNorm layer in training mode'
        momenta = [bn.momentum for bn in bn_layers]
        for bn in bn_layers:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the batches below
        with torch.no_grad():
            for data in runner.train_dataloader:
                model._run_forward(model.data_preprocessor(data, False), mode='tensor')
        for bn, momentum in zip(bn_layers, momenta):
            bn.momentum = momentum
        runner.logger.info(f'recomputed {len(bn_layers)} BatchNorm layers')


class BNNet(ToyNet):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 3))


def test_precise_bn_hook_sets_statistics_to_the_average_over_the_training_data():
    model = BNNet()
    loader = toy_loader()
    run([PreciseBNHook()], model=model, loader=loader)
    bn = model.body[1]
    with torch.no_grad():
        features = [model.body[0](x) for x, _ in loader]
    mean = torch.stack([f.mean(0) for f in features]).mean(0)
    var = torch.stack([f.var(0, unbiased=True) for f in features]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert int(bn.num_batches_tracked) == len(loader)


# --------------------------------------------------------------------------- logging
class LossTrendHook(Hook):
    """Logs through ``runner.logger`` and ``runner.message_hub``, as OpenMMLab hooks do."""

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL), which logs what it sets

    def __init__(self, interval: int = 4) -> None:
        self.interval = interval
        self.seen: list[float] = []

    def before_train(self, runner) -> None:
        assert isinstance(runner.logger, logging.Logger)
        runner.logger.info(f'training {runner.experiment_name} for {runner.max_iters} iters')

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        hub = runner.message_hub
        loss = hub.get_scalar('train/loss').current()
        assert loss == pytest.approx(float(outputs['loss']))
        self.seen.append(loss)
        hub.update_scalar('train/loss_x10', 10 * loss)
        hub.update_info('last_loss', loss)
        if self.every_n_train_iters(runner, self.interval):
            window = hub.get_scalar('train/loss').mean(self.interval)
            runner.logger.info(f'mean loss of the last {self.interval} iters: {window:.6f}')


def read(path: str) -> str:
    import fsspec

    with fsspec.open(path, "r") as f:
        return f.read()


def test_logging_hook_writes_to_the_run_log_and_the_logged_scalars(tmp_path):
    hook = LossTrendHook()
    trainer = run([hook], work_dir=str(tmp_path / "work"), log_interval=4)
    log = read(f"{trainer.log_dir}/{trainer.timestamp}.log")
    assert f"training {trainer.experiment_name} for 24 iters" in log
    for k in range(1, 7):
        mean = sum(hook.seen[4 * k - 4:4 * k]) / 4
        assert f"mean loss of the last 4 iters: {mean:.6f}" in log
    records = [json.loads(line) for line in read(f"{trainer.log_dir}/scalars.jsonl").splitlines()]
    train = [r for r in records if r["mode"] == "train"]
    assert [r["iter"] for r in train] == [4, 8, 12, 16, 20, 24]
    for r in train:  # losses are logged as their mean over the last 10 (window_size) iters
        window = hook.seen[max(0, r["iter"] - 10):r["iter"]]
        assert r["loss_x10"] == pytest.approx(10 * sum(window) / len(window))
    assert trainer.message_hub.get_info("last_loss") == hook.seen[-1]
    assert trainer.message_hub.log_scalars["train/loss_x10"].current() == 10 * hook.seen[-1]


# --------------------------------------------------------------------------- the runner
class RunnerSurface(Hook):
    """What MMEngine hooks read from the runner, checked where they read it."""

    def __init__(self):
        self.calls = []

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        assert runner.max_epochs == loop.max_epochs == 3
        assert runner.max_iters == loop.max_iters == 36
        assert loop.dataloader is not None and runner.train_dataloader is not None
        assert runner.val_loop.dataloader is not None and runner.val_dataloader is not None
        assert runner.optim_wrapper.get_lr()["lr"] == [0.1]
        assert [type(s).__name__ for s in runner.param_schedulers] == ["MultiStepLR"]
        assert runner.cfg["max_epochs"] == 3 and runner.cfg["val_interval"] == 1
        assert runner.rank == 0 and runner.world_size == 1
        assert runner.work_dir and runner.log_dir.startswith(runner.work_dir)
        assert runner.timestamp in runner.log_dir and runner.timestamp in runner.experiment_name
        assert not is_model_wrapper(runner.model)
        assert isinstance(runner.message_hub.runtime_info, dict)
        self.calls.append("before_train")

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        assert runner.train_loop.iter == runner.iter and runner.train_loop.epoch == runner.epoch
        assert runner.iter == runner.epoch * 12 + batch_idx
        if self.end_of_epoch(runner.train_dataloader, batch_idx):
            self.calls.append(f"end of epoch {runner.epoch}")

    def after_train_epoch(self, runner) -> None:
        super().after_train_epoch(runner=runner)  # MMEngine hooks call their parents this way
        if self.is_last_train_epoch(runner):
            self.calls.append("last epoch")

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        assert "loss" in metrics
        self.calls.append(f"val after {runner.epoch}")


class ValLossNet(ToyNet):
    def forward(self, x, y=None, mode="tensor"):
        if mode == "predict":
            return {"loss": nn.functional.cross_entropy(self.body(x), y)}
        return super().forward(x, y, mode)


def test_a_hook_finds_on_the_trainer_what_mmengine_runner_offers():
    hook = RunnerSurface()
    torch.manual_seed(0)
    trainer = Trainer(max_epochs=3, work_dir="memory://surface", callbacks=[hook],
                      default_callbacks=QUIET,
                      param_scheduler=dict(type="MultiStepLR", milestones=[2]))
    trainer.fit(ValLossNet(), toy_loader(), toy_loader(n=32))
    assert hook.calls == ["before_train", "end of epoch 0", "val after 1", "end of epoch 1",
                          "val after 2", "end of epoch 2", "last epoch", "val after 3"]
    trainer.test(dataloader=toy_loader(n=16))
    assert trainer.test_loop.dataloader is not None


def test_hook_arguments_by_mmengine_keyword_and_positionally():
    from trainer.callbacks import ParamSchedulerCallback

    class StepTwice(ParamSchedulerCallback):
        def after_train_epoch(self, runner) -> None:
            super().after_train_epoch(runner=runner)
            super().after_train_epoch(trainer=runner)
            super().after_train_epoch(runner)

    torch.manual_seed(0)
    trainer = Trainer(max_epochs=2, work_dir="memory://kw", default_callbacks={
        **QUIET, "param_scheduler": StepTwice()},
        param_scheduler=dict(type="ExponentialLR", gamma=0.5, end=100))
    trainer.fit(ToyNet(), toy_loader())
    assert trainer.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.1 * 0.5**6)]


def test_registry_decorators_port_but_register_nothing():
    assert HOOKS.register_module()(MeanTeacherHook) is MeanTeacherHook
    assert HOOKS.register_module(module=PreciseBNHook) is PreciseBNHook
    with pytest.raises(TypeError, match=r"write @register_module\(\), with the parentheses"):
        HOOKS.register_module(MeanTeacherHook)


def test_is_model_wrapper_for_ddp_and_not_for_fsdp2(one_rank_group):
    from torch.distributed.fsdp import fully_shard

    from trainer.dist.ddp import SeparateDistributedModel

    model = ToyNet()
    assert not is_model_wrapper(model)
    assert is_model_wrapper(nn.DataParallel(model))
    assert is_model_wrapper(nn.parallel.DistributedDataParallel(ToyNet()))
    assert is_model_wrapper(SeparateDistributedModel(SemiNet()))
    sharded = fully_shard(ToyNet())  # changes the class in place: the model is its own
    assert not is_model_wrapper(sharded) and not hasattr(sharded, "module")
