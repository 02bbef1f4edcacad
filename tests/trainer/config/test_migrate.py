"""MMCV configs → new configs: every field, and learning-rate curves equal to MMCV's formulas."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from trainer.callbacks import Callback

from trainer import Trainer
from trainer.config.load import load_config
from trainer.config.migrate.mmcv import migrate_config, migrate_file
from trainer.config.migrate.schedule import migrate_lr_config
from trainer.schedulers import build_param_schedulers

CONFIGS = Path(__file__).parent / "mmcv_configs"
ACCURACY = {"type": "Accuracy", "task": "multiclass", "num_classes": 3}


# ----------------------------------------------------------------------------- MMCV's formulas
def annealing_cos(start, end, factor, weight=1.0):
    return end + 0.5 * weight * (start - end) * (math.cos(math.pi * factor) + 1)


def mmcv_regular_lr(policy, cfg, base, progress, max_progress, it):
    """``get_lr`` of MMCV's ``<Policy>LrUpdaterHook`` variants."""
    target = (base * cfg["min_lr_ratio"] if cfg.get("min_lr_ratio") is not None
              else cfg.get("min_lr"))
    if policy == "fixed":
        return base
    if policy == "step":
        step = cfg["step"]
        exp = progress // step if isinstance(step, int) else sum(progress >= s for s in step)
        lr = base * cfg.get("gamma", 0.1) ** exp
        return lr if cfg.get("min_lr") is None else max(lr, cfg["min_lr"])
    if policy == "exp":
        return base * cfg["gamma"] ** progress
    if policy == "poly":
        min_lr = cfg.get("min_lr", 0.0)
        return (base - min_lr) * (1 - progress / max_progress) ** cfg.get("power", 1.0) + min_lr
    if policy == "CosineAnnealing":
        return annealing_cos(base, target, progress / max_progress)
    if policy == "FlatCosineAnnealing":
        start = round(max_progress * cfg.get("start_percent", 0.75))
        if progress < start:
            return base
        return annealing_cos(base, target, (progress - start) / (max_progress - start))
    if policy == "CosineRestart":
        periods, weights = cfg["periods"], cfg.get("restart_weights", [1])
        ends = [sum(periods[:i + 1]) for i in range(len(periods))]
        idx = next(i for i, end in enumerate(ends) if progress < end)
        alpha = min((progress - (0 if idx == 0 else ends[idx - 1])) / periods[idx], 1)
        return annealing_cos(base, target, alpha, weights[idx])
    if policy == "LinearAnnealing":
        return base + (target - base) * progress / max_progress
    if policy == "OneCycle":
        total = cfg.get("total_steps", max_progress)
        div, pct = cfg.get("div_factor", 25), cfg.get("pct_start", 0.3)
        initial = cfg["max_lr"] / div
        phases = [(float(pct * total) - 1, 1, div),
                  (total - 1, div, 1 / cfg.get("final_div_factor", 1e4))]
        start = 0
        for end, lo, hi in phases:
            if it <= end:
                return annealing_cos(initial * lo, initial * hi, (it - start) / (end - start))
            start = end
    raise AssertionError(policy)


def mmcv_curve(lr_config, base, *, epoch_runner, epoch_length, max_epochs=None, max_iters=None):
    """The lr of every iteration: LrUpdaterHook.before_train_epoch / before_train_iter."""
    cfg = dict(lr_config)
    policy = cfg.pop("policy")
    by_epoch = cfg.pop("by_epoch", epoch_runner and policy != "OneCycle")
    warmup, warmup_iters = cfg.pop("warmup", None), cfg.pop("warmup_iters", 0)
    ratio = cfg.pop("warmup_ratio", 0.1)
    if cfg.pop("warmup_by_epoch", False):
        warmup_iters *= epoch_length
    total = max_epochs * epoch_length if epoch_runner else max_iters
    lrs = []
    for it in range(total):
        progress, max_progress = (it // epoch_length, max_epochs) if by_epoch else (it, total)
        lr = mmcv_regular_lr(policy, cfg, base, progress, max_progress, it)
        if warmup is not None and it < warmup_iters:
            if warmup == "constant":
                lr = lr * ratio
            elif warmup == "linear":
                lr = lr * (1 - (1 - it / warmup_iters) * (1 - ratio))
            else:
                lr = lr * ratio ** (1 - it / warmup_iters)
        lrs.append(lr)
    return lrs


def scheduled_curve(schedulers, base, *, epoch_runner, epoch_length, max_epochs=None,
                    max_iters=None):
    """The lr of every iteration with the Trainer's schedulers, stepped as its callback does."""
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=base)
    built = build_param_schedulers(schedulers, optimizer, epoch_length=epoch_length,
                                   max_epochs=max_epochs if epoch_runner else None,
                                   max_iters=None if epoch_runner else max_iters)
    total = max_epochs * epoch_length if epoch_runner else max_iters
    lrs = []
    for it in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        for s in built:
            if not s.by_epoch:
                s.step()
        if (it + 1) % epoch_length == 0:
            for s in built:
                if s.by_epoch:
                    s.step()
    return lrs


def max_relative_error(a, b):
    assert len(a) == len(b)
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


EPOCH_RUN = {"epoch_runner": True, "epoch_length": 12, "max_epochs": 12}
ITER_RUN = {"epoch_runner": False, "epoch_length": 25, "max_iters": 300}

EXACT = [
    ("step, no warm-up", dict(policy="step", step=[8, 11]), EPOCH_RUN),
    ("mmdet 1x: linear warm-up + step", dict(policy="step", warmup="linear", warmup_iters=30,
                                             warmup_ratio=0.001, step=[8, 11]), EPOCH_RUN),
    ("step interval + constant warm-up", dict(policy="step", step=3, gamma=0.5,
                                              warmup="constant", warmup_iters=15,
                                              warmup_ratio=0.25), EPOCH_RUN),
    ("step + exp warm-up", dict(policy="step", step=[5, 9], warmup="exp", warmup_iters=40,
                                warmup_ratio=0.01), EPOCH_RUN),
    ("step list clipped at min_lr", dict(policy="step", step=[2, 4, 6, 8], min_lr=2.5e-4),
     EPOCH_RUN),
    ("step interval clipped at min_lr", dict(policy="step", step=2, gamma=0.5, min_lr=0.02),
     EPOCH_RUN),
    ("exp per epoch", dict(policy="exp", gamma=0.8), EPOCH_RUN),
    ("poly per epoch", dict(policy="poly", power=2.0), EPOCH_RUN),
    ("mmseg poly with a floor", dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False),
     ITER_RUN),
    ("poly + linear warm-up", dict(policy="poly", power=1.0, min_lr=0.0, by_epoch=False,
                                   warmup="linear", warmup_iters=40, warmup_ratio=1e-6),
     ITER_RUN),
    ("cosine per epoch + warm-up", dict(policy="CosineAnnealing", min_lr=0, warmup="linear",
                                        warmup_iters=20, warmup_ratio=0.1), EPOCH_RUN),
    ("cosine per iteration, epoch run", dict(policy="CosineAnnealing", min_lr=1e-5,
                                             by_epoch=False), EPOCH_RUN),
    ("cosine to a ratio", dict(policy="CosineAnnealing", min_lr_ratio=0.01), ITER_RUN),
    ("flat + cosine", dict(policy="FlatCosineAnnealing", start_percent=0.75, min_lr=1e-4),
     ITER_RUN),
    ("cosine restarts", dict(policy="CosineRestart", periods=[100, 200],
                             restart_weights=[1, 0.5], min_lr=0), ITER_RUN),
    ("one cycle", dict(policy="OneCycle", max_lr=0.3, pct_start=0.25), ITER_RUN),
    ("linear annealing + warm-up", dict(policy="LinearAnnealing", min_lr_ratio=0.1,
                                        warmup="linear", warmup_iters=30,
                                        warmup_ratio=0.01, by_epoch=False), ITER_RUN),
    ("fixed + warm-up", dict(policy="fixed", warmup="linear", warmup_iters=10), ITER_RUN),
    ("constant warm-up by epoch", dict(policy="step", step=[8], warmup="constant",
                                       warmup_iters=2, warmup_by_epoch=True), EPOCH_RUN),
]


@pytest.mark.parametrize(("name", "lr_config", "run"), EXACT, ids=[e[0] for e in EXACT])
def test_migrated_lr_curve_equals_mmcv(name, lr_config, run):
    base = 0.1
    schedulers, notes = migrate_lr_config(
        lr_config, by_epoch_runner=run["epoch_runner"], max_epochs=run.get("max_epochs"),
        max_iters=run.get("max_iters"), base_lr=base)
    assert notes == [] or all("absolute floor" in n for n in notes), notes
    expected = mmcv_curve(lr_config, base, **run)
    got = scheduled_curve(schedulers, base, **run)
    assert max_relative_error(got, expected) < 1e-9


def test_iteration_schedules_of_an_epoch_run_are_exact_with_the_epoch_length():
    run = EPOCH_RUN
    for lr_config in (dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False),
                      dict(policy="FlatCosineAnnealing", min_lr=0, by_epoch=False),
                      dict(policy="step", step=[8], warmup="linear", warmup_iters=2,
                           warmup_by_epoch=True, warmup_ratio=0.01),
                      dict(policy="step", step=[8], warmup="exp", warmup_iters=1,
                           warmup_by_epoch=True, warmup_ratio=0.01)):
        schedulers, notes = migrate_lr_config(lr_config, by_epoch_runner=True, max_epochs=12,
                                              epoch_length=12, base_lr=0.1)
        assert notes == []
        assert max_relative_error(scheduled_curve(schedulers, 0.1, **run),
                                  mmcv_curve(lr_config, 0.1, **run)) < 1e-9


@pytest.mark.parametrize(("lr_config", "run", "note", "bound"), [
    # Without the epoch length the converted epoch schedule ends one iteration early.
    (dict(policy="poly", power=1.0, by_epoch=False), EPOCH_RUN, "--epoch-length", 1.0),
    (dict(policy="step", step=[8], warmup="linear", warmup_iters=2, warmup_by_epoch=True,
          warmup_ratio=0.5), EPOCH_RUN, "--epoch-length", 0.03),
    # A floor under a decay that starts with a warm-up: close, not equal.
    (dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False, warmup="linear",
          warmup_iters=40, warmup_ratio=1e-6), ITER_RUN, "non-zero minimum", 0.01),
    (dict(policy="CosineAnnealing", min_lr=1e-3, by_epoch=False, warmup="linear",
          warmup_iters=50, warmup_ratio=0.001), ITER_RUN, "non-zero minimum", 0.01),
])
def test_approximate_schedules_say_so_and_stay_close(lr_config, run, note, bound):
    schedulers, notes = migrate_lr_config(
        lr_config, by_epoch_runner=run["epoch_runner"], max_epochs=run.get("max_epochs"),
        max_iters=run.get("max_iters"), base_lr=0.1)
    assert any(note in n for n in notes), notes
    got, expected = scheduled_curve(schedulers, 0.1, **run), mmcv_curve(lr_config, 0.1, **run)
    error = max_relative_error(got[:-1], expected[:-1])  # poly's last step: MMCV 1/M, here 0
    assert 0 < error < bound


@pytest.mark.parametrize(("lr_config", "message"), [
    (dict(policy="inv", gamma=0.1), "inv"),
    (dict(policy="Cyclic", target_ratio=(10, 1e-4)), "Cyclic"),
    (dict(policy="step", step=[1], by_epoch=True), "IterBasedRunner"),
])
def test_unmappable_policies_are_notes_not_schedulers(lr_config, message):
    schedulers, notes = migrate_lr_config(lr_config, by_epoch_runner=False, max_iters=100)
    assert schedulers == []
    assert any(message in n and "not mapped" in n for n in notes)


def test_bad_lr_configs_are_refused():
    with pytest.raises(ValueError, match="policy 'triangle' is not an MMCV policy"):
        migrate_lr_config(dict(policy="triangle"), by_epoch_runner=True, max_epochs=1)
    with pytest.raises(ValueError, match="warmup 'cosine' is not one of"):
        migrate_lr_config(dict(policy="fixed", warmup="cosine", warmup_iters=5),
                          by_epoch_runner=True, max_epochs=1)
    with pytest.raises(ValueError, match="exactly one of min_lr and min_lr_ratio"):
        migrate_lr_config(dict(policy="CosineAnnealing"), by_epoch_runner=True, max_epochs=1)


# ----------------------------------------------------------------------------- fields
def migrate(**old):
    return migrate_config({"runner": dict(type="EpochBasedRunner", max_epochs=12), **old})


def test_runner_becomes_train_cfg():
    new, comments, _ = migrate_config(dict(runner=dict(type="IterBasedRunner", max_iters=900)))
    assert new["train_cfg"] == {"by_epoch": False, "max_iters": 900}
    assert "IterBasedRunner" in comments["train_cfg"]
    assert migrate_config(dict(total_epochs=7, lr_config=None))[0]["train_cfg"] == {
        "by_epoch": True, "max_epochs": 7}
    assert migrate_config(dict(total_iters=50, lr_config=None))[0]["train_cfg"] == {
        "by_epoch": False, "max_iters": 50}
    new, _, notes = migrate_config(dict(runner=dict(type="EpochBasedRunnerAmp", max_epochs=3)))
    assert new["train_cfg"]["max_epochs"] == 3 and any("EpochBasedRunnerAmp" in n for n in notes)
    with pytest.raises(ValueError, match="cannot tell how long to train"):
        migrate_config(dict(runner=dict(type="EpochBasedRunner")))


def test_not_an_mmcv_config_is_refused():
    with pytest.raises(ValueError, match="does not look like an MMCV runner config"):
        migrate_config(dict(model=dict(type="Net"), train_cfg=dict(max_epochs=1)))


def test_optimizer_and_optimizer_config_become_optim_wrapper():
    new, _, _ = migrate(optimizer=dict(type="SGD", lr=0.02, paramwise_cfg=dict(
        norm_decay_mult=0.0)), optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2)))
    assert new["optim_wrapper"] == {"type": "OptimWrapper",
                                    "optimizer": {"type": "SGD", "lr": 0.02},
                                    "paramwise_cfg": {"norm_decay_mult": 0.0},
                                    "clip_grad": {"max_norm": 35, "norm_type": 2}}
    new, _, _ = migrate(optimizer=dict(type="SGD", lr=0.1), optimizer_config=dict(
        type="Fp16OptimizerHook", loss_scale="dynamic", grad_clip=None, distributed=True))
    assert new["optim_wrapper"] == {"type": "AmpOptimWrapper", "loss_scale": "dynamic",
                                    "optimizer": {"type": "SGD", "lr": 0.1}}
    new, _, _ = migrate(optimizer=dict(type="SGD", lr=0.1), optimizer_config=dict(grad_clip=None),
                        fp16=dict(loss_scale=512.0))
    assert new["optim_wrapper"]["type"] == "AmpOptimWrapper"
    assert new["optim_wrapper"]["loss_scale"] == 512.0
    new, _, notes = migrate(optimizer=dict(type="Adam", lr=1e-3), optimizer_config=dict(
        type="GradientCumulativeOptimizerHook", cumulative_iters=4, detect_anomalous_params=True))
    assert new["optim_wrapper"]["accumulative_counts"] == 4
    assert any("detect_anomalous_params" in n for n in notes)
    new, _, _ = migrate(optimizer=dict(generator=dict(type="Adam", lr=1e-4),
                                       discriminator=dict(type="Adam", lr=4e-4)))
    assert new["optim_wrapper"]["discriminator"] == {
        "type": "OptimWrapper", "optimizer": {"type": "Adam", "lr": 4e-4}}


def test_checkpoint_log_and_evaluation_become_default_hooks():
    new, _, notes = migrate_config(dict(
        runner=dict(type="IterBasedRunner", max_iters=1000),
        checkpoint_config=dict(interval=200, max_keep_ckpts=3, create_symlink=False),
        log_config=dict(interval=20, hooks=[dict(type="TextLoggerHook"),
                                            dict(type="TensorboardLoggerHook"),
                                            dict(type="WandbLoggerHook")]),
        data=dict(samples_per_gpu=2, workers_per_gpu=1, train=dict(type="A"),
                  val=dict(type="B")),
        evaluation=dict(interval=200, metric="mIoU", save_best="mIoU", rule="greater",
                        start=100)))
    assert new["default_hooks"] == {
        "checkpoint": {"type": "CheckpointHook", "interval": 200, "max_keep_ckpts": 3,
                       "by_epoch": False, "save_best": "mIoU", "rule": "greater"},
        "logger": {"type": "LoggerHook", "interval": 20, "log_metric_by_epoch": False}}
    assert new["log_processor"] == {"by_epoch": False}
    assert new["visualizer"]["vis_backends"] == [{"type": "TensorboardVisBackend"}]
    assert new["train_cfg"] == {"by_epoch": False, "max_iters": 1000, "val_interval": 200,
                                "val_begin": 100}
    assert new["val_cfg"] == {}
    joined = "\n".join(notes)
    for expected in ("create_symlink", "WandbLoggerHook", "metric='mIoU'", "start=100"):
        assert expected in joined


def test_data_becomes_dataloaders():
    new, _, notes = migrate(data=dict(
        samples_per_gpu=4, workers_per_gpu=2, persistent_workers=True,
        train=[dict(type="A"), dict(type="B")],
        val=dict(type="C", samples_per_gpu=1),
        test=dict(type="D"),
        test_dataloader=dict(samples_per_gpu=16, shuffle=False, drop_last=False),
        sampler=dict(type="X")))
    assert new["train_dataloader"] == {
        "batch_size": 4, "num_workers": 2, "persistent_workers": True,
        "sampler": {"type": "DefaultSampler", "shuffle": True},
        "dataset": {"type": "ConcatDataset", "datasets": [{"type": "A"}, {"type": "B"}]}}
    assert new["val_dataloader"]["batch_size"] == 1
    assert new["val_dataloader"]["dataset"] == {"type": "C"}
    assert new["test_dataloader"]["batch_size"] == 16
    assert new["test_dataloader"]["drop_last"] is False
    assert new["test_cfg"] == {} and new["val_cfg"] == {}
    assert new["train_cfg"]["max_epochs"] == 12
    assert any("data.sampler" in n for n in notes)


def test_workflow_with_validation_maps_to_val_interval():
    new, _, notes = migrate(data=dict(samples_per_gpu=2, train=dict(type="A"),
                                      val=dict(type="B")),
                            workflow=[("train", 3), ("val", 1)])
    assert new["train_cfg"]["val_interval"] == 3
    assert "workflow" not in new
    assert any("workflow=[('train', 3), ('val', 1)] is gone" in n for n in notes)


def test_resume_environment_and_randomness():
    new, _, notes = migrate(resume_from="work_dirs/x/epoch_3.pth", load_from="pre.pth",
                            dist_params=dict(backend="nccl"), cudnn_benchmark=True,
                            mp_start_method="fork", opencv_num_threads=0, seed=3,
                            deterministic=True, gpu_ids=[0])
    assert new["load_from"] == "work_dirs/x/epoch_3.pth" and new["resume"] is True
    assert new["env_cfg"] == {"cudnn_benchmark": True,
                              "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
                              "dist_cfg": {"backend": "nccl"}}
    assert new["randomness"] == {"seed": 3, "deterministic": True}
    assert any("gpu_ids" in n for n in notes)
    assert migrate(auto_resume=True)[0]["resume"] is True
    assert migrate(load_from="pre.pth")[0]["load_from"] == "pre.pth"


def test_old_top_level_model_settings_move_into_the_model():
    new, _, notes = migrate(model=dict(type="FasterRCNN"), train_cfg=dict(rpn=dict(x=1)),
                            test_cfg=dict(rcnn=dict(y=2)))
    assert new["model"] == {"type": "FasterRCNN", "train_cfg": {"rpn": {"x": 1}},
                            "test_cfg": {"rcnn": {"y": 2}}}
    assert new["train_cfg"] == {"by_epoch": True, "max_epochs": 12}
    assert "test_cfg" not in new
    assert any("moved into model.train_cfg" in n for n in notes)


def test_what_cannot_be_mapped_is_kept_as_a_note():
    new, _, notes = migrate(momentum_config=dict(policy="cyclic"),
                            custom_hooks=[dict(type="NumClassCheckHook"),
                                          dict(type="EMAHook")],
                            evaluation=dict(interval=1, metric="bbox"))
    joined = "\n".join(notes)
    assert "momentum_config" in joined and "NumClassCheckHook" in joined
    assert "EMAHook" not in joined  # a known callback alias
    assert "no data.val" in joined
    assert new["custom_hooks"] == [{"type": "NumClassCheckHook"}, {"type": "EMAHook"}]


def test_migrated_file_loads_back_and_lists_its_notes(tmp_path):
    text = migrate_file(CONFIGS / "segmentation.py")
    assert text.startswith("# Migrated from the MMCV config segmentation.py")
    assert "# NOTE: evaluation.metric='mIoU'" in text
    assert "# from lr_config=" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    path = tmp_path / "new.py"
    path.write_text(text)
    assert load_config(path) == migrate_config(CONFIGS / "segmentation.py")[0]


# ----------------------------------------------------------------------------- end to end
class LrRecorder(Callback):
    """The learning rate of every training iteration."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def before_train_iter(self, trainer, batch_idx, data_batch=None):
        self.lrs.append(trainer.optim_wrapper.param_groups[0]["lr"])


REALISTIC = [
    ("classification.py", dict(epoch_runner=True, epoch_length=12, max_epochs=10), 0.1),
    ("detection.py", dict(epoch_runner=True, epoch_length=12, max_epochs=12), 0.01),
    ("segmentation.py", dict(epoch_runner=False, epoch_length=24, max_iters=200), 0.01),
]


@pytest.mark.parametrize(("name", "run", "base_lr"), REALISTIC, ids=[r[0] for r in REALISTIC])
def test_realistic_mmcv_configs_train_with_mmcv_learning_rates(name, run, base_lr, tmp_path):
    new_config = tmp_path / name
    new_config.write_text(migrate_file(CONFIGS / name))
    recorder = LrRecorder()
    trainer = Trainer.from_config(new_config, {
        "work_dir": str(tmp_path / "work"), "custom_hooks": [recorder],
        "val_evaluator": ACCURACY, "default_hooks.progress": None})
    trainer.fit()

    old = load_config(CONFIGS / name)
    expected = mmcv_curve(old["lr_config"], base_lr, **run)
    assert max_relative_error(recorder.lrs, expected) < 1e-9
    assert trainer.iter == len(expected)
    metrics = trainer.test(ckpt_path="last")
    assert metrics["MulticlassAccuracy"] > 0.6


def test_realistic_configs_map_their_fields():
    det, _, det_notes = migrate_config(CONFIGS / "detection.py")
    assert det["optim_wrapper"]["type"] == "AmpOptimWrapper"
    assert det["optim_wrapper"]["clip_grad"] == {"max_norm": 35, "norm_type": 2}
    assert det["default_hooks"]["checkpoint"] == {"type": "CheckpointHook", "interval": 1,
                                                  "save_best": "auto"}
    assert det["train_cfg"] == {"by_epoch": True, "max_epochs": 12, "val_interval": 2}
    assert any("NumClassCheckHook" in n for n in det_notes)
    seg, _, _ = migrate_config(CONFIGS / "segmentation.py")
    assert seg["param_scheduler"] == [{"type": "PolyLR", "eta_min": 1e-4, "power": 0.9,
                                       "by_epoch": False, "begin": 0, "end": 201}]
    assert seg["env_cfg"]["cudnn_benchmark"] is True
    cls, _, _ = migrate_config(CONFIGS / "classification.py")
    assert cls["default_hooks"]["checkpoint"] == {"type": "CheckpointHook", "interval": 5,
                                                  "max_keep_ckpts": 2}
    assert cls["custom_hooks"] == []
