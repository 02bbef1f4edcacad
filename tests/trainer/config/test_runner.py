"""MMEngine config fields to Trainer: each field's mapping, and the tutorial end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import ToyNet
from trainer import Trainer
from trainer import callbacks as cb
from trainer.config.runner import parse_runner_config
from trainer.loops import EpochBasedTrainLoop, IterBasedTrainLoop, ValLoop

TOY_DATA = {"type": "tests.conftest.toy_dataset", "n": 48}
ACCURACY = {"type": "Accuracy", "task": "multiclass", "num_classes": 3}
QUIET = {"progress": None}


def loader(shuffle=True, **kwargs):
    return {"dataset": TOY_DATA, "batch_size": 8, "num_workers": 0, "persistent_workers": True,
            "sampler": {"type": "DefaultSampler", "shuffle": shuffle}, **kwargs}


def kwargs_of(**cfg):
    return parse_runner_config(cfg).trainer_kwargs


def callbacks_of(trainer, cls):
    return [c for c in trainer.callbacks if isinstance(c, cls)]


# ----------------------------------------------------------------------------- the tutorial
def tutorial_config(work_dir):
    """MMEngine's migration tutorial: Runner(model=..., ...) as a config, as written."""
    return dict(
        model=dict(type="tests.conftest.ToyNet"),
        work_dir=work_dir,
        train_dataloader=loader(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.001, momentum=0.9)),
        param_scheduler=dict(type="MultiStepLR", milestones=[6, 8]),
        default_hooks=dict(logger=dict(type="LoggerHook"),
                           checkpoint=dict(type="CheckpointHook", interval=2),
                           progress=None),
        train_cfg=dict(by_epoch=True, max_epochs=10, val_interval=2),
        resume=True,
    )


def test_tutorial_epoch_based_example_runs_as_written(work_dir):
    trainer = Trainer.from_config(tutorial_config(work_dir))
    trainer.fit()
    assert (trainer.epoch, trainer.iter) == (10, 60)
    assert trainer.optim_wrapper.get_lr()["lr"] == pytest.approx([0.001 * 0.1 * 0.1])
    saved = sorted(p for p in os.listdir(work_dir) if p.endswith(".pth"))
    assert saved == ["epoch_10.pth", "epoch_2.pth", "epoch_4.pth", "epoch_6.pth", "epoch_8.pth"]
    # resume=True: a second run picks up the finished state and trains no further.
    again = Trainer.from_config(tutorial_config(work_dir))
    again.fit()
    assert (again.epoch, again.iter) == (10, 60)
    for a, b in zip(trainer.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("schedule", [
    dict(type="MultiStepLR", by_epoch=False, milestones=[36, 48]),
    dict(type="MultiStepLR", milestones=[6, 8], convert_to_iter_based=True),
])
def test_tutorial_iteration_based_conversion_runs_as_written(work_dir, schedule):
    cfg = tutorial_config(work_dir)
    cfg.update(
        train_cfg=dict(by_epoch=False, max_iters=60, val_interval=12),
        default_hooks=dict(logger=dict(type="LoggerHook", log_metric_by_epoch=False),
                           checkpoint=dict(type="CheckpointHook", by_epoch=False,
                                           interval=24),
                           progress=None),
        param_scheduler=schedule,
        log_processor=dict(by_epoch=False),
        val_dataloader=loader(shuffle=False), val_cfg=dict(), val_evaluator=ACCURACY)
    lrs = []

    class Record(cb.Callback):
        def before_train_iter(self, trainer, batch_idx, data_batch=None):
            lrs.append(trainer.optim_wrapper.get_lr()["lr"][0])

    cfg["custom_hooks"] = [Record()]
    trainer = Trainer.from_config(cfg)
    assert callbacks_of(trainer, cb.LoggerCallback)[0].log_metric_by_epoch is False
    trainer.fit()
    assert trainer.iter == 60
    assert lrs[:36] == [pytest.approx(1e-3)] * 36
    assert lrs[36:48] == [pytest.approx(1e-4)] * 12 and lrs[48:] == [pytest.approx(1e-5)] * 12
    saved = sorted(p for p in os.listdir(work_dir) if p.endswith(".pth"))
    assert saved == ["iter_24.pth", "iter_48.pth", "iter_60.pth"]


# ----------------------------------------------------------------------------- model
class PreprocessedNet(ToyNet):
    """ToyNet taking MMEngine's data_preprocessor argument."""

    def __init__(self, data_preprocessor=None):
        super().__init__()
        if data_preprocessor is not None:
            self.data_preprocessor = data_preprocessor


def test_model_by_path_by_object_and_with_a_data_preprocessor():
    spec = parse_runner_config(dict(model=dict(type="tests.conftest.ToyNet", dropout=0.5),
                                    train_cfg=dict(max_epochs=1)))
    model = spec.build_model()
    assert isinstance(model, ToyNet) and model.body[2].p == 0.5
    net = ToyNet()
    assert parse_runner_config(dict(model=net, train_cfg=dict(max_epochs=1))).build_model() is net
    assert isinstance(parse_runner_config(dict(model=ToyNet)).build_model(), ToyNet)
    spec = parse_runner_config(dict(
        model=dict(type=PreprocessedNet),
        data_preprocessor=dict(type="BaseDataPreprocessor", non_blocking=True)))
    assert spec.build_model().data_preprocessor.non_blocking is True


def test_model_mistakes_name_the_type_and_the_closest_names():
    with pytest.raises(ValueError, match=r"tests.conftest has no 'ToyNett'; closest: 'ToyNet'"):
        parse_runner_config(dict(model=dict(type="tests.conftest.ToyNett"))).build_model()
    with pytest.raises(ValueError, match=r"unknown model type 'ToyNett'. Did you mean "
                                         r"'ToyNet'"):
        parse_runner_config(dict(model=dict(type="ToyNett"), custom_imports=dict(
            imports=["tests.conftest"]))).build_model()
    with pytest.raises(TypeError, match=r"model: ToyNet does not take 'drop'. Did you mean "
                                        r"'dropout'\?"):
        parse_runner_config(dict(model=dict(type=ToyNet, drop=0.1))).build_model()
    with pytest.raises(TypeError, match=r"model built a dict, not a torch nn\.Module"):
        parse_runner_config(dict(model=dict(type="builtins.dict"))).build_model()


def test_custom_imports_make_bare_names_resolve():
    spec = parse_runner_config(dict(
        custom_imports=dict(imports=["tests.conftest"], allow_failed_imports=False),
        model=dict(type="ToyNet"), train_dataloader=dict(
            dataset=dict(type="toy_dataset", n=16), batch_size=4),
        train_cfg=dict(max_iters=2)))
    assert isinstance(spec.build_model(), ToyNet)
    assert len(spec.build_train_dataloader()) == 4
    with pytest.raises(ImportError, match="custom_imports: cannot import 'no_such_mod'"):
        parse_runner_config(dict(custom_imports=dict(imports=["no_such_mod"])))


# ----------------------------------------------------------------------------- loops
def test_train_cfg_selects_the_loop():
    assert kwargs_of(train_cfg=dict(by_epoch=True, max_epochs=3, val_begin=2,
                                    val_interval=2)) == {
        "max_epochs": 3, "val_begin": 2, "val_interval": 2}
    assert kwargs_of(train_cfg=dict(by_epoch=False, max_iters=100)) == {"max_iters": 100}
    assert kwargs_of(train_cfg=dict(max_iters=100)) == {"max_iters": 100}
    assert kwargs_of(train_cfg=dict(type="IterBasedTrainLoop", max_iters=5))["train_loop"] \
        is IterBasedTrainLoop
    assert kwargs_of(train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=5))["max_epochs"] == 5


class SlowStartLoop(EpochBasedTrainLoop):
    """A custom loop with an argument of its own."""

    def __init__(self, trainer, dataloader, max_epochs, val_loop=None, val_begin=1,
                 val_interval=1, warm_epochs=0):
        super().__init__(trainer, dataloader, max_epochs, val_loop, val_begin, val_interval)
        self.warm_epochs = warm_epochs


def test_custom_loop_types_and_their_arguments(work_dir):
    kwargs = kwargs_of(train_cfg=dict(
        type="tests.trainer.config.test_runner.SlowStartLoop", max_epochs=1, warm_epochs=3))
    assert kwargs["train_loop"] == {"type": SlowStartLoop, "warm_epochs": 3}
    assert kwargs["max_epochs"] == 1
    trainer = Trainer.from_config(dict(model=dict(type=ToyNet), work_dir=work_dir,
                                       train_dataloader=loader(), default_hooks=QUIET,
                                       train_cfg=dict(type=SlowStartLoop, max_epochs=1,
                                                      warm_epochs=3)))
    trainer.fit()
    assert trainer.train_loop.warm_epochs == 3
    with pytest.raises(TypeError, match="SlowStartLoop does not take 'warm'"):
        kwargs_of(train_cfg=dict(type=SlowStartLoop, max_epochs=1, warm=3))


@pytest.mark.parametrize(("train_cfg", "error", "message"), [
    (dict(type="EpochBasedTrainLoop", by_epoch=True, max_epochs=2), ValueError,
     "both type='EpochBasedTrainLoop' and by_epoch=True"),
    (dict(by_epoch=True, max_iters=100), ValueError,
     "epoch-based training counts max_epochs, but max_iters=100 was given"),
    (dict(by_epoch=False), ValueError, "iteration-based training needs max_iters"),
    (dict(by_epoch=True, max_epochs=2, val_intreval=1), TypeError,
     r"unknown keys \['val_intreval'\]"),
    (dict(type="torch.nn.Linear", max_epochs=1), TypeError, "must be a subclass of"),
    (dict(by_epoch="yes", max_epochs=1), TypeError, "by_epoch must be True or False"),
    (dict(max_epochs=4, dynamic_intervals=[(3, 1), (2, 2)]), ValueError,
     "increasing milestones"),
    ("epochs", TypeError, "train_cfg must be a dict"),
])
def test_train_cfg_mistakes(train_cfg, error, message):
    with pytest.raises(error, match=message):
        kwargs_of(train_cfg=train_cfg)


def test_dynamic_intervals_change_the_validation_interval(work_dir):
    validated = []

    class Record(cb.Callback):
        def after_val_epoch(self, trainer, metrics=None):
            validated.append(trainer.epoch)

    Trainer.from_config(dict(
        model=dict(type=ToyNet), work_dir=work_dir, train_dataloader=loader(),
        val_dataloader=loader(shuffle=False), val_cfg=dict(), val_evaluator=ACCURACY,
        train_cfg=dict(by_epoch=True, max_epochs=9, val_interval=3,
                       dynamic_intervals=[(4, 2), (8, 1)]),
        default_hooks=QUIET, custom_hooks=[Record()])).fit()
    assert validated == [3, 4, 6, 8, 9]


def test_val_and_test_sections_go_together():
    kwargs = kwargs_of(val_dataloader=loader(), val_cfg=dict(), val_evaluator=ACCURACY,
                       test_dataloader=loader(), test_cfg=dict(type="TestLoop"))
    assert kwargs["val_evaluator"] == ACCURACY and "val_loop" not in kwargs

    class MyVal(ValLoop):
        def __init__(self, trainer, dataloader, evaluator, tag="x"):
            super().__init__(trainer, dataloader, evaluator)
            self.tag = tag

    loop = kwargs_of(val_dataloader=loader(), val_cfg=dict(type=MyVal, tag="y"))["val_loop"]
    assert loop == {"type": MyVal, "tag": "y"}
    with pytest.raises(ValueError, match="val_dataloader is set but val_cfg is not"):
        kwargs_of(val_dataloader=loader())
    with pytest.raises(ValueError, match=r"val_dataloader and val_evaluator are set but val_cfg "
                                         r"is not: add val_cfg = dict\(\), that is all that is "
                                         r"missing \(as in MMEngine, val_dataloader, val_cfg "
                                         r"and val_evaluator go together\)"):
        kwargs_of(val_dataloader=loader(), val_evaluator=ACCURACY)
    with pytest.raises(ValueError, match="test_cfg and test_evaluator are set but "
                                         "test_dataloader is not"):
        kwargs_of(test_cfg=dict(), test_evaluator=ACCURACY)
    with pytest.raises(ValueError, match="test_cfg is set but test_dataloader is not"):
        kwargs_of(test_cfg=dict())
    with pytest.raises(ValueError, match="val_evaluator is set but val_dataloader is not"):
        kwargs_of(val_evaluator=ACCURACY)
    with pytest.raises(TypeError, match=r"val_cfg type .* must be a subclass of "
                                        r"trainer\.loops\.ValLoop"):
        kwargs_of(val_dataloader=loader(), val_cfg=dict(type="torch.nn.Linear"))
    spec = parse_runner_config(dict(val_dataloader=loader(), val_cfg=dict(fp16=True)))
    assert spec.pending == {"val_cfg.fp16": True}


def test_a_config_without_train_cfg_can_still_test(work_dir):
    spec = parse_runner_config(dict(model=dict(type=ToyNet), test_dataloader=loader(),
                                    test_cfg=dict(), test_evaluator=ACCURACY,
                                    work_dir=work_dir))
    assert spec.trainable is False and spec.build_train_dataloader is None
    trainer = Trainer.from_config(spec.config | {"default_hooks": QUIET})
    assert 0 <= trainer.test()["MulticlassAccuracy"] <= 1


# ----------------------------------------------------------------------------- optimizer
def test_optimizer_fields_pass_through_and_scale():
    amp = dict(type="AmpOptimWrapper", loss_scale="dynamic", dtype="bfloat16",
               optimizer=dict(type="SGD", lr=0.1))
    assert kwargs_of(optim_wrapper=amp)["optim_wrapper"] == amp
    scaled = kwargs_of(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                       auto_scale_lr=dict(enable=True, base_batch_size=32))
    assert scaled["auto_scale_lr"] == {"enable": True, "base_batch_size": 32}
    # As in MMEngine, nothing is scaled unless enable=True.
    assert "auto_scale_lr" not in kwargs_of(auto_scale_lr=dict(base_batch_size=16))
    assert "auto_scale_lr" not in kwargs_of(auto_scale_lr=dict(enable=False,
                                                               base_batch_size=16))
    with pytest.raises(ValueError, match=r"auto_scale_lr has unknown keys \['base'\]"):
        kwargs_of(auto_scale_lr=dict(enable=True, base=16))
    with pytest.raises(NotImplementedError, match="constructor='LayerDecayConstructor'"):
        kwargs_of(optim_wrapper=dict(constructor="LayerDecayConstructor",
                                     optimizer=dict(type="SGD", lr=0.1)))


def test_auto_scale_lr_scales_the_learning_rate_of_the_run(work_dir):
    trainer = Trainer.from_config(dict(
        model=dict(type=ToyNet), work_dir=work_dir, train_dataloader=loader(),
        train_cfg=dict(max_iters=1), default_hooks=QUIET,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        auto_scale_lr=dict(enable=True, base_batch_size=32)))
    trainer.fit()
    assert trainer.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.1 * 8 / 32)]


def test_optimizer_types_from_custom_imports_are_resolved():
    kwargs = kwargs_of(custom_imports=dict(imports=["torch.optim"]),
                       optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                       param_scheduler=[dict(type="MultiStepLR", milestones=[1])])
    assert kwargs["optim_wrapper"]["optimizer"]["type"] is torch.optim.SGD
    assert kwargs["param_scheduler"][0]["type"] == "MultiStepLR"


def test_paramwise_cfg_reaches_the_optimizer(work_dir):
    trainer = Trainer.from_config(dict(
        model=dict(type=ToyNet), work_dir=work_dir, train_dataloader=loader(),
        train_cfg=dict(max_iters=1), default_hooks=QUIET,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-4),
                           paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0))))
    trainer.fit()
    groups = trainer.optim_wrapper.param_groups
    assert [g["lr"] for g in groups] == [0.1, 0.2, 0.1, 0.2]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0, 1e-4, 0.0]


# ----------------------------------------------------------------------------- hooks
def test_default_hooks_become_default_callbacks():
    class MyCheckpoint(cb.CheckpointCallback):
        pass

    class Extra(cb.Callback):
        def __init__(self, every=1, priority=None):
            super().__init__(priority)
            self.every = every

    spec = parse_runner_config(dict(default_hooks=dict(
        runtime_info=dict(type="RuntimeInfoHook"),
        timer=dict(type="IterTimerHook"),
        logger=dict(type="LoggerHook", interval=10, ignore_last=False),
        param_scheduler=dict(type="ParamSchedulerHook"),
        checkpoint=dict(type=MyCheckpoint, interval=3),
        sampler_seed=None,
        visualization=dict(type="VisualizationHook", draw=False),
        mine=dict(type=Extra, every=4))))
    overrides = spec.trainer_kwargs["default_callbacks"]
    assert overrides["logger"] == {"interval": 10}
    assert overrides["runtime_info"] == {} and overrides["sampler_seed"] is None
    assert isinstance(overrides["checkpoint"], MyCheckpoint)
    assert overrides["checkpoint"].interval == 3
    extra = spec.trainer_kwargs["callbacks"]
    assert len(extra) == 1 and isinstance(extra[0], Extra) and extra[0].every == 4
    assert any("visualization is ignored" in n for n in spec.notes)
    assert any("ignore_last=False is ignored" in n for n in spec.notes)


def test_default_hooks_and_log_processor_configure_the_built_callbacks(work_dir):
    trainer = Trainer.from_config(dict(
        work_dir=work_dir, train_cfg=dict(max_iters=10),
        default_hooks=dict(checkpoint=None, progress=None,
                           logger=dict(type="LoggerHook", interval=7)),
        log_processor=dict(window_size=3, by_epoch=False, num_digits=4)))
    assert not callbacks_of(trainer, cb.CheckpointCallback)
    (logger,) = callbacks_of(trainer, cb.LoggerCallback)
    assert (logger.interval, logger.window_size, logger.log_metric_by_epoch) == (7, 3, False)
    spec = parse_runner_config(dict(log_processor=dict(num_digits=4)))
    assert any("log_processor.num_digits is ignored" in n for n in spec.notes)


@pytest.mark.parametrize(("hooks", "error", "message"), [
    (dict(logger=dict(type="LoggerHook", intervall=5)), TypeError,
     "LoggerCallback does not take 'intervall'. Did you mean 'interval'"),
    (dict(logger=dict(type="LogerHook")), ValueError,
     "unknown default_hooks.logger type 'LogerHook'. Did you mean 'LoggerHook'"),
    (dict(mine=dict(interval=3)), ValueError, "default_hooks.mine needs a type"),
    (dict(logger="LoggerHook"), TypeError, "default_hooks.logger must be a dict"),
])
def test_default_hooks_mistakes(hooks, error, message):
    with pytest.raises(error, match=message):
        kwargs_of(default_hooks=hooks)


def test_custom_hooks_become_callbacks():
    class Counter(cb.Callback):
        def __init__(self, start=0, priority=None):
            super().__init__(priority)
            self.start = start

    kwargs = kwargs_of(custom_hooks=[dict(type=Counter, start=2, priority="HIGH"),
                                     dict(type="EMAHook"), Counter()])
    first, ema, third = kwargs["callbacks"]
    assert first.start == 2 and isinstance(ema, cb.EMACallback) and isinstance(third, Counter)
    with pytest.raises(TypeError, match=r"custom_hooks\[0\] type must be a Callback subclass"):
        kwargs_of(custom_hooks=[dict(type="torch.nn.ReLU")])
    with pytest.raises(TypeError, match="custom_hooks must be a list"):
        kwargs_of(custom_hooks=dict(type=Counter))


def test_visualizer_backends_become_loggers():
    spec = parse_runner_config(dict(visualizer=dict(type="Visualizer", vis_backends=[
        dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend"),
        dict(type="MLflowVisBackend", tracking_uri="sqlite:///m.db", exp_name="e", params={}),
        dict(type="WandbVisBackend", init_kwargs=dict(project="p", mode="offline")),
        dict(type="ClearMLVisBackend")])))
    assert spec.trainer_kwargs["loggers"] == [
        "jsonl", {"type": "tensorboard"}, {"type": "mlflow", "tracking_uri": "sqlite:///m.db",
                                 "experiment": "e"},
        {"type": "wandb", "init_kwargs": {"project": "p", "mode": "offline"}}]
    assert any("MLflowVisBackend becomes the 'mlflow' logger (params ignored)" in n
               for n in spec.notes)
    assert any("ClearMLVisBackend is ignored" in n for n in spec.notes)
    spec = parse_runner_config(dict(visualizer=dict(type="Visualizer", vis_backends=[
        dict(type="LocalVisBackend")])))
    assert "loggers" not in spec.trainer_kwargs  # scalars.jsonl, the default


def test_profiler_hook_becomes_the_profiler_callback():
    profiler = kwargs_of(custom_hooks=[dict(
        type="ProfilerHook", by_epoch=False, profile_times=4, activity_with_cuda=True,
        record_shapes=True, on_trace_ready=dict(type="tb_trace", dir_name="prof"))])["callbacks"][0]
    assert isinstance(profiler, cb.ProfilerCallback)
    assert profiler.schedule == {"wait": 0, "warmup": 0, "active": 4, "repeat": 1,
                                 "skip_first": 0}
    assert profiler.activities == ("cpu", "cuda") and profiler.out_dir == "prof"
    assert profiler.options["record_shapes"] and not profiler.by_epoch
    scheduled = kwargs_of(custom_hooks=[dict(
        type="ProfilerHook", schedule=dict(wait=1, warmup=1, active=2, repeat=2),
        on_trace_ready=dict(type="log_trace", row_limit=5), json_trace_path="t.json")])
    profiler = scheduled["callbacks"][0]
    assert profiler.schedule["repeat"] == 2 and profiler.summary_rows == 5
    assert profiler.json_trace_path == "t.json"
    with pytest.raises(ValueError, match="on_trace_ready type must be 'tb_trace' or 'log_trace'"):
        kwargs_of(custom_hooks=[dict(type="ProfilerHook", on_trace_ready=dict(type="x"))])
    with pytest.raises(TypeError, match="does not take 'profile_every'"):
        kwargs_of(custom_hooks=[dict(type="ProfilerHook", profile_every=3)])


# ----------------------------------------------------------------------------- environment
def test_randomness_environment_and_run_options(work_dir):
    kwargs = kwargs_of(train_cfg=dict(max_epochs=2),
                       randomness=dict(seed=7, deterministic=False, diff_rank_seed=True),
                       work_dir=work_dir, load_from="a.pth", resume=False,
                       precision="bf16-mixed", log_interval=5, launcher="none",
                       env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork"),
                                    dist_cfg=dict(backend="nccl")))
    assert kwargs == {"max_epochs": 2, "seed": 7, "deterministic": False, "diff_rank_seed": True,
                      "work_dir": work_dir, "load_from": "a.pth", "resume": False,
                      "precision": "bf16-mixed", "log_interval": 5}
    with pytest.raises(ValueError, match=r"randomness has unknown keys \['sed'\]"):
        kwargs_of(randomness=dict(sed=1))
    with pytest.raises(ValueError, match=r"env_cfg has unknown keys \['cudnn'\]"):
        kwargs_of(env_cfg=dict(cudnn=True))


def test_settings_without_effect_yet_are_pending_and_warned():
    with pytest.warns(UserWarning, match="env_cfg.cudnn_benchmark=True is read but not applied"):
        spec = parse_runner_config(dict(env_cfg=dict(cudnn_benchmark=True)))
    assert spec.pending == {"env_cfg.cudnn_benchmark": True}


def test_launchers_and_ddp_options(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="launcher='pytorch' needs processes started by "
                                         "torchrun"):
        kwargs_of(launcher="pytorch")
    with pytest.raises(NotImplementedError, match="launcher='slurm' is not supported"):
        kwargs_of(launcher="slurm")
    spec = parse_runner_config(dict(model_wrapper_cfg=dict(find_unused_parameters=True)))
    assert "strategy" not in spec.trainer_kwargs
    assert any("ignored in a single process" in n for n in spec.notes)
    monkeypatch.setenv("RANK", "0")
    assert kwargs_of(launcher="pytorch")["strategy"] == "ddp"
    kwargs = kwargs_of(launcher="pytorch", sync_bn="torch",
                       model_wrapper_cfg=dict(type="MMDistributedDataParallel",
                                              find_unused_parameters=True,
                                              broadcast_buffers=False),
                       env_cfg=dict(dist_cfg=dict(backend="nccl", timeout=600)))
    assert kwargs["strategy"] == {"type": "ddp", "find_unused_parameters": True,
                                  "broadcast_buffers": False, "sync_batchnorm": True,
                                  "timeout_s": 600.0}
    with pytest.raises(NotImplementedError, match="MMFullyShardedDataParallel"):
        kwargs_of(model_wrapper_cfg=dict(type="MMFullyShardedDataParallel"))


def test_accepted_and_ignored_fields_leave_a_note():
    spec = parse_runner_config(dict(default_scope="mmdet", log_level="INFO",
                                    experiment_name="x"))
    assert spec.trainer_kwargs == {}  # no train_cfg: no run length, validate/test only
    joined = "\n".join(spec.notes)
    assert "default_scope='mmdet' is ignored" in joined and "log_level" in joined


def test_mmcv_configs_and_misspelt_fields_are_refused():
    with pytest.raises(ValueError, match=r"MMCV runner config \(it has \['runner', "
                                         r"'lr_config'\]\).*python -m trainer migrate"):
        parse_runner_config(dict(runner=dict(type="EpochBasedRunner"), lr_config=dict()))
    with pytest.raises(ValueError, match="'optim_wraper' is not one the Trainer reads; did "
                                         "you mean 'optim_wrapper'"):
        parse_runner_config(dict(optim_wraper=dict()))
    # The config's own variables are fine.
    parse_runner_config(dict(data_root="/data", train_pipeline=[], dataset_type="X"))


def test_work_dir_defaults_to_the_config_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my_exp.py"
    path.write_text("train_cfg = dict(max_epochs=1)\n")
    spec = parse_runner_config(str(path), {"train_cfg.max_epochs": 2})
    assert spec.trainer_kwargs["work_dir"] == "work_dirs/my_exp"
    assert spec.trainer_kwargs["max_epochs"] == 2
    assert spec.config["work_dir"] == "work_dirs/my_exp"


def test_from_a_file_with_base_and_overrides(tmp_path, work_dir):
    base = tmp_path / "base.py"
    base.write_text(
        "model = dict(type='tests.conftest.ToyNet')\n"
        "train_dataloader = dict(dataset=dict(type='tests.conftest.toy_dataset', n=32),\n"
        "                        batch_size=8, sampler=dict(type='DefaultSampler', "
        "shuffle=True))\n"
        "train_cfg = dict(by_epoch=True, max_epochs=5)\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n"
        "default_hooks = dict(progress=None)\n")
    child = tmp_path / "child.py"
    child.write_text("_base_ = './base.py'\nrandomness = dict(seed=1)\n"
                     "optim_wrapper = dict(optimizer=dict(momentum=0.9))\n")
    trainer = Trainer.from_config(str(child), {"work_dir": work_dir, "train_cfg.max_epochs": 2,
                                               "optim_wrapper.optimizer.lr": 0.05})
    trainer.fit()
    assert trainer.epoch == 2 and trainer.iter == 8
    group = trainer.optim_wrapper.param_groups[0]
    assert (group["lr"], group["momentum"]) == (0.05, 0.9)
    assert trainer.config["train_cfg"]["max_epochs"] == 2
    assert Path(work_dir, "epoch_2.pth").exists()


def test_each_run_dumps_the_resolved_config_next_to_its_log(work_dir):
    from trainer.config.load import load_config

    cfg = tutorial_config(work_dir)
    cfg["train_cfg"] = dict(by_epoch=True, max_epochs=1)
    trainer = Trainer.from_config(cfg)
    trainer.fit()
    dumped = Path(trainer.log_dir) / "config.py"
    assert load_config(str(dumped))["train_cfg"]["max_epochs"] == 1
    assert load_config(str(dumped))["optim_wrapper"]["optimizer"]["lr"] == 0.001
