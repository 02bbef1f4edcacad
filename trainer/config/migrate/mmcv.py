"""Rewrite an MMCV runner config (``runner``, ``lr_config``, ``optimizer_config``, ...) in the
MMEngine form that ``Trainer.from_config`` reads: ``python -m trainer migrate old.py > new.py``.

The old file is loaded with its ``_base_`` files, so the new one is a single, complete config.
Fields the runner never read (``model``, pipelines, ``dataset_type``, ...) are kept as they are.
Each new field carries a comment naming the MMCV fields it came from, and whatever has no
equivalent is listed in comments at the top (``NOTE: ...``) rather than silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.config.load import format_config, load_config
from trainer.config.migrate.schedule import migrate_lr_config

__all__ = ["MMCV_FIELDS", "migrate_config", "migrate_file", "mmcv_fields"]

# Top-level fields that only MMCV runner configs have. ``optimizer`` and ``data`` mark one only in
# their MMCV form (see ``mmcv_fields``); ``seed`` and ``deterministic`` mark nothing on their own.
MMCV_FIELDS = ("runner", "total_epochs", "total_iters", "workflow", "lr_config",
               "momentum_config", "optimizer_config", "fp16", "checkpoint_config", "log_config",
               "evaluation", "resume_from", "auto_resume", "dist_params", "cudnn_benchmark",
               "mp_start_method", "opencv_num_threads", "gpu_ids")
_ORDER = ("train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
          "test_cfg", "optim_wrapper", "param_scheduler", "default_hooks", "log_processor",
          "visualizer", "env_cfg", "randomness", "load_from", "resume")
_LOGGER_HOOKS_IGNORED = ("TextLoggerHook",)


def migrate_file(path: str | os.PathLike, epoch_length: int | None = None) -> str:
    """The text of the new config file for the MMCV config at ``path``."""
    config, comments, notes = migrate_config(path, epoch_length=epoch_length)
    header = [f"Migrated from the MMCV config {Path(path).name} by `python -m trainer migrate`.",
              "Review every NOTE below; `python -m trainer train` runs this file as it is."]
    header += [f"NOTE: {note}" for note in notes]
    return format_config(config, header="\n".join(header), comments=comments)


def migrate_config(old: Mapping[str, Any] | str | os.PathLike, epoch_length: int | None = None
                   ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """``(new config, comments per new key, notes)`` for an MMCV config (a dict or a file).

    Args:
        old: the MMCV config; a file's ``_base_`` files are merged in.
        epoch_length: iterations per epoch of the training data, if known: it makes exact the
            few schedules MMCV counted in iterations inside an epoch-based run (see
            ``trainer.config.migrate.schedule``).

    Example:
        >>> new, comments, notes = migrate_config(dict(
        ...     runner=dict(type="EpochBasedRunner", max_epochs=12),
        ...     optimizer=dict(type="SGD", lr=0.02, momentum=0.9),
        ...     optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2)),
        ...     lr_config=dict(policy="step", step=[8, 11])))
        >>> new["train_cfg"], new["optim_wrapper"]["clip_grad"]
        ({'by_epoch': True, 'max_epochs': 12}, {'max_norm': 35, 'norm_type': 2})
    """
    cfg = load_config(old)
    if not mmcv_fields(cfg) or ("optim_wrapper" in cfg or "param_scheduler" in cfg):
        raise ValueError("this does not look like an MMCV runner config (it has none of runner, "
                         "lr_config, optimizer_config, checkpoint_config, log_config, "
                         "evaluation, data, or it already has optim_wrapper/param_scheduler)")
    return _Migration(cfg, epoch_length).run()


def mmcv_fields(cfg: Mapping[str, Any]) -> list[str]:
    """The fields of ``cfg`` that only an MMCV runner config has (none for an MMEngine one).

    Example:
        >>> mmcv_fields(dict(runner=dict(type="EpochBasedRunner", max_epochs=12),
        ...                  optimizer=dict(type="SGD", lr=0.1), seed=0))
        ['runner', 'optimizer']
    """
    found = [k for k in MMCV_FIELDS if k in cfg]
    data = cfg.get("data")
    if isinstance(data, Mapping) and ("samples_per_gpu" in data or "train" in data):
        found.append("data")
    if "optimizer" in cfg and "optim_wrapper" not in cfg:
        found.append("optimizer")
    return found


class _Migration:
    """One pass over an MMCV config; each ``_field`` method consumes the keys it maps."""

    def __init__(self, cfg: dict[str, Any], epoch_length: int | None) -> None:
        self.old = cfg
        self.epoch_length = epoch_length
        self.new: dict[str, Any] = {}
        self.comments: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.used: set[str] = set()
        self.by_epoch = True
        self.max_epochs: int | None = None
        self.max_iters: int | None = None
        self.base_lr: float | None = None
        self.save_best: dict[str, Any] = {}

    def take(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.old.get(key, default)

    def put(self, key: str, value: Any, comment: str | None = None) -> None:
        self.new[key] = value
        if comment:
            self.comments.setdefault(key, []).append(comment)

    def run(self) -> tuple[dict[str, Any], dict[str, str], list[str]]:
        self.model_settings()
        self.runner()
        self.data()
        self.evaluation_and_workflow()
        self.optimizer()
        self.schedule()
        self.hooks()
        self.environment()
        kept = {k: v for k, v in self.old.items() if k not in self.used and k not in self.new}
        new = {**kept, **{k: self.new[k] for k in _ORDER if k in self.new},
               **{k: v for k, v in self.new.items() if k not in _ORDER}}
        comments = {k: "\n".join(v) for k, v in self.comments.items()}
        return new, comments, self.notes

    # ------------------------------------------------------------------ fields
    def model_settings(self) -> None:
        """Old mmdet configs kept the model's train_cfg/test_cfg at the top level."""
        model = self.old.get("model")
        for key in ("train_cfg", "test_cfg"):
            if key in self.old and isinstance(model, dict):
                self.used.add(key)
                model.setdefault(key, self.old[key])
                self.notes.append(f"the top-level {key} (model settings in MMCV) moved into "
                                  f"model.{key}; the top-level {key} now configures the loop")

    def runner(self) -> None:
        runner = dict(self.take("runner") or {})
        total_epochs, total_iters = self.take("total_epochs"), self.take("total_iters")
        kind = runner.pop("type", None)
        max_epochs = runner.pop("max_epochs", total_epochs)
        max_iters = runner.pop("max_iters", total_iters)
        if kind not in (None, "EpochBasedRunner", "IterBasedRunner"):
            self.notes.append(f"runner type {kind!r} has no equivalent; the built-in "
                              f"{'epoch' if max_epochs else 'iteration'}-based loop is used")
        by_epoch = kind == "EpochBasedRunner" or (kind != "IterBasedRunner" and max_epochs)
        if (by_epoch and max_epochs is None) or (not by_epoch and max_iters is None):
            raise ValueError("cannot tell how long to train: the config needs runner=dict("
                             "type='EpochBasedRunner', max_epochs=N) (or IterBasedRunner with "
                             "max_iters, or total_epochs)")
        self.by_epoch = bool(by_epoch)
        self.max_epochs, self.max_iters = (max_epochs, None) if by_epoch else (None, max_iters)
        for key in sorted(runner):
            self.notes.append(f"runner.{key}={runner[key]!r} is not mapped")
        source = f"runner={self.old.get('runner')!r}" if "runner" in self.old else (
            "total_epochs" if total_epochs is not None else "total_iters")
        train_cfg = ({"by_epoch": True, "max_epochs": max_epochs} if by_epoch
                     else {"by_epoch": False, "max_iters": max_iters})
        self.put("train_cfg", train_cfg, f"from {source}")

    def data(self) -> None:
        data = self.take("data")
        if data is None:
            return
        data = dict(data)
        batch_size = data.pop("samples_per_gpu", 1)
        workers = data.pop("workers_per_gpu", 0)
        common = {k: data.pop(k) for k in ("persistent_workers", "pin_memory") if k in data}
        for stage in ("train", "val", "test"):
            dataset = data.pop(stage, None)
            loader = dict(data.pop(f"{stage}_dataloader", None) or {})
            if dataset is None:
                continue
            if isinstance(dataset, list):
                dataset = {"type": "ConcatDataset", "datasets": dataset}
            elif isinstance(dataset, dict):
                dataset = dict(dataset)
                loader.setdefault("samples_per_gpu", dataset.pop("samples_per_gpu", batch_size))
            new = {"batch_size": loader.pop("samples_per_gpu", batch_size),
                   "num_workers": loader.pop("workers_per_gpu", workers), **common}
            shuffle = loader.pop("shuffle", stage == "train")
            loader.pop("dist", None)
            new.update(loader)
            new["sampler"] = {"type": "DefaultSampler", "shuffle": shuffle}
            new["dataset"] = dataset
            self.put(f"{stage}_dataloader", new, f"from data.samples_per_gpu, "
                     f"data.workers_per_gpu and data.{stage}")
        for key in sorted(data):
            self.notes.append(f"data.{key}={data[key]!r} is not mapped")

    def evaluation_and_workflow(self) -> None:
        evaluation = dict(self.take("evaluation") or {})
        workflow = self.take("workflow")
        interval, begin = evaluation.pop("interval", None), evaluation.pop("start", None)
        if workflow is not None:
            self.notes.append(f"workflow={workflow!r} is gone: train_cfg runs the training and "
                              "val_cfg/val_interval the validation")
            val_phases = [n for mode, n in workflow if mode == "val"]
            train_phases = [n for mode, n in workflow if mode == "train"]
            if val_phases and interval is None and train_phases:
                interval = train_phases[0]
                self.notes.append("the ('val', 1) phase of the workflow computed losses; "
                                  "without a val_evaluator the Trainer averages the dict of "
                                  "scalars that val_step returns, so return losses there or "
                                  "set val_evaluator")
        if "val_dataloader" in self.new:
            self.put("val_cfg", {}, "validation during training (MMCV's EvalHook)")
            if interval is not None:
                self.new["train_cfg"]["val_interval"] = interval
            if begin is not None:
                self.new["train_cfg"]["val_begin"] = begin
                if interval and begin % interval:
                    self.notes.append(f"MMCV validated at start={begin} and every {interval} "
                                      f"after; the Trainer validates at multiples of "
                                      f"val_interval={interval} from val_begin={begin} on")
        elif self.old.get("evaluation"):
            self.notes.append(f"evaluation={self.old['evaluation']!r} is not mapped: there is "
                              "no data.val")
            evaluation = {}
        if "test_dataloader" in self.new:
            self.put("test_cfg", {}, "testing with `python -m trainer test CONFIG CHECKPOINT`")
        self.save_best = {k: evaluation.pop(k) for k in ("save_best", "rule") if k in evaluation}
        evaluation.pop("by_epoch", None)
        if "metric" in evaluation:
            self.notes.append(f"evaluation.metric={evaluation.pop('metric')!r} was computed by "
                              "the dataset's evaluate(); set val_evaluator (and test_evaluator) "
                              "to a torchmetrics metric or an MMEngine-style metric")
        for key in sorted(evaluation):
            self.notes.append(f"evaluation.{key}={evaluation[key]!r} is not mapped")

    def optimizer(self) -> None:
        optimizer = self.take("optimizer")
        hook = dict(self.take("optimizer_config") or {})
        fp16 = self.take("fp16")
        if optimizer is None:
            return
        optimizer = dict(optimizer)
        if "type" not in optimizer and all(isinstance(v, Mapping) for v in optimizer.values()):
            wrapper: dict[str, Any] = {name: {"type": "OptimWrapper", "optimizer": dict(sub)}
                                       for name, sub in optimizer.items()}
            self.put("optim_wrapper", wrapper, "from optimizer (one per submodule)")
            self.base_lr = None
            return
        wrapper = {"type": "OptimWrapper", "optimizer": optimizer}
        for key in ("paramwise_cfg", "constructor"):
            if key in optimizer:
                wrapper[key] = optimizer.pop(key)
        self.base_lr = optimizer.get("lr")
        hook_type = hook.pop("type", "OptimizerHook")
        if hook.get("grad_clip") is not None:
            wrapper["clip_grad"] = hook.pop("grad_clip")
        hook.pop("grad_clip", None)
        if "Cumulative" in hook_type:
            wrapper["accumulative_counts"] = hook.pop("cumulative_iters", 1)
        if "Fp16" in hook_type or fp16 is not None:
            wrapper["type"] = "AmpOptimWrapper"
            wrapper["loss_scale"] = hook.pop("loss_scale", (fp16 or {}).get("loss_scale", 512.0))
        for key in ("distributed", "coalesce", "bucket_size_mb"):
            hook.pop(key, None)
        for key in sorted(hook):
            self.notes.append(f"optimizer_config.{key}={hook[key]!r} is not mapped")
        sources = ", ".join(k for k in ("optimizer", "optimizer_config", "fp16") if k in self.old)
        self.put("optim_wrapper", wrapper, f"from {sources}")

    def schedule(self) -> None:
        lr_config = self.take("lr_config")
        momentum = self.take("momentum_config")
        if momentum is not None:
            self.notes.append(f"momentum_config={momentum!r} is not mapped: add the matching "
                              "momentum scheduler (e.g. CosineAnnealingMomentum) by hand")
        if lr_config is None:
            return
        schedulers, notes = migrate_lr_config(
            lr_config, by_epoch_runner=self.by_epoch, max_epochs=self.max_epochs,
            max_iters=self.max_iters, epoch_length=self.epoch_length,
            base_lr=self.base_lr)
        self.notes.extend(notes)
        if schedulers:
            self.put("param_scheduler", schedulers,
                     f"from lr_config={lr_config!r}\n(the same lr at every iteration as MMCV)")

    def hooks(self) -> None:
        hooks: dict[str, Any] = {}
        checkpoint = self.take("checkpoint_config")
        if checkpoint is not None:
            checkpoint = dict(checkpoint)
            if not self.by_epoch:
                checkpoint.setdefault("by_epoch", False)
            for key in ("create_symlink", "sync_buffer", "file_client_args", "meta"):
                if key in checkpoint:
                    self.notes.append(f"checkpoint_config.{key}={checkpoint.pop(key)!r} is "
                                      "not mapped")
            hooks["checkpoint"] = {"type": "CheckpointHook", **checkpoint}
        if self.save_best:
            hooks.setdefault("checkpoint", {"type": "CheckpointHook"}).update(self.save_best)
        log_config = self.take("log_config")
        if log_config is not None:
            hooks["logger"] = self.logger(dict(log_config))
        if hooks:
            sources = [k for k in ("checkpoint_config", "log_config") if k in self.old]
            sources += ["evaluation.save_best"] if self.save_best else []
            self.put("default_hooks", hooks, f"from {', '.join(sources)}")
        self.custom_hooks()

    def custom_hooks(self) -> None:
        from trainer.callbacks import CALLBACKS

        for hook in self.old.get("custom_hooks") or []:
            name = hook.get("type") if isinstance(hook, Mapping) else None
            if isinstance(name, str) and name not in CALLBACKS and "." not in name:
                self.notes.append(f"custom_hooks type {name!r} is not a callback here: remove "
                                  "it, or give the import path of a Callback class")

    def logger(self, log_config: dict[str, Any]) -> dict[str, Any]:
        logger: dict[str, Any] = {"type": "LoggerHook", "interval": log_config.pop("interval", 10)}
        backends = []
        for hook in log_config.pop("hooks", []):
            hook_type = hook.get("type")
            if hook_type == "TensorboardLoggerHook":
                backends.append({"type": "TensorboardVisBackend"})
            elif hook_type not in _LOGGER_HOOKS_IGNORED:
                self.notes.append(f"log_config hook {hook_type} is not mapped")
        if not self.by_epoch:
            logger["log_metric_by_epoch"] = False
            self.put("log_processor", {"by_epoch": False}, "iteration-based logging")
        if backends:
            self.put("visualizer", {"type": "Visualizer", "vis_backends": backends},
                     "from the TensorboardLoggerHook of log_config")
        for key in sorted(log_config):
            self.notes.append(f"log_config.{key}={log_config[key]!r} is not mapped")
        return logger

    def environment(self) -> None:
        env: dict[str, Any] = {}
        if self.old.get("cudnn_benchmark") is not None:
            env["cudnn_benchmark"] = self.take("cudnn_benchmark")
        mp = {k: self.take(k) for k in ("mp_start_method", "opencv_num_threads") if k in self.old}
        if mp:
            env["mp_cfg"] = mp
        if self.old.get("dist_params") is not None:
            env["dist_cfg"] = self.take("dist_params")
        if env:
            sources = [k for k in ("cudnn_benchmark", "mp_start_method", "opencv_num_threads",
                                   "dist_params") if k in self.old]
            self.put("env_cfg", env, f"from {', '.join(sources)}")
        randomness = {k: self.take(k) for k in ("seed", "deterministic") if k in self.old}
        if randomness.get("seed") is not None:
            self.put("randomness", randomness, "from seed and deterministic")
        if "gpu_ids" in self.old:
            self.notes.append(f"gpu_ids={self.take('gpu_ids')!r} is not mapped: start one "
                              "process per GPU with torchrun and --launcher pytorch")
        resume_from = self.take("resume_from")
        if resume_from is not None:
            self.put("load_from", resume_from, "from resume_from")
            self.put("resume", True, "from resume_from")
        elif self.take("auto_resume"):
            self.put("resume", True, "from auto_resume: the latest checkpoint in work_dir")
