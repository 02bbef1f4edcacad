"""Map an MMEngine runner config onto ``Trainer`` keywords: what ``Trainer.from_config`` calls.

Every field of MMEngine's ``Runner.from_cfg`` is read here; the table in ``docs/config.md`` says
what each becomes. Fields that have no effect in this library (``default_scope``, ``log_level``,
the visualization hook, ...) are accepted and listed in ``RunnerSpec.notes``; fields that need a
``Trainer`` feature that does not exist yet are kept in ``RunnerSpec.pending`` and warned about.
"""

from __future__ import annotations

import difflib
import logging
import os
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from trainer import dist
from trainer.config.data import build_dataloader
from trainer.config.hooks import callback_kwargs
from trainer.config.load import load_config
from trainer.config.loops import eval_loop, train_loop_kwargs
from trainer.config.migrate.mmcv import mmcv_fields
from trainer.config.types import build_object, expect_mapping, import_custom_modules
from trainer.model import BaseDataPreprocessor

__all__ = ["KNOWN_FIELDS", "RunnerSpec", "parse_runner_config"]

log = logging.getLogger(__name__)

KNOWN_FIELDS = (
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg",
    "val_cfg", "test_cfg", "val_evaluator", "test_evaluator", "optim_wrapper", "param_scheduler",
    "default_hooks", "custom_hooks", "log_processor", "randomness", "env_cfg", "launcher",
    "load_from", "resume", "auto_scale_lr", "default_scope", "data_preprocessor",
    "custom_imports", "log_level", "visualizer", "experiment_name", "model_wrapper_cfg",
    "compile", "find_unused_parameters", "sync_bn",
    # Trainer keywords MMEngine has no field for:
    "precision", "accelerator", "devices", "strategy", "log_interval",
)
_PASSED_AS_IS = ("precision", "accelerator", "devices", "strategy", "log_interval", "compile")


@dataclass
class RunnerSpec:
    """What ``Trainer.from_config`` needs: keywords, the resolved config, and builders.

    The builders run after the ``Trainer`` exists, so its seed also seeds the model's
    initialisation and the loaders.

    Attributes:
        trainer_kwargs: keyword arguments of ``Trainer.__init__``.
        config: the fully resolved config (inheritance, overrides and references applied).
        build_model: returns the model, or ``None`` when the config has none.
        build_train_dataloader, build_val_dataloader, build_test_dataloader: return a loader.
        notes: fields accepted without effect, and other remarks, one line each.
        pending: mapped fields that need a Trainer feature that does not exist yet.
        trainable: whether the config has a ``train_cfg`` (without one the Trainer has no run
            length and only ``validate``/``test``/``predict`` make sense).
    """

    trainer_kwargs: dict[str, Any]
    config: dict[str, Any]
    build_model: Callable[[], nn.Module] | None = None
    build_train_dataloader: Callable[[], Any] | None = None
    build_val_dataloader: Callable[[], Any] | None = None
    build_test_dataloader: Callable[[], Any] | None = None
    notes: list[str] = field(default_factory=list)
    pending: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True


def parse_runner_config(cfg: Mapping[str, Any] | str | os.PathLike,
                        cfg_options: Mapping[str, Any] | None = None) -> RunnerSpec:
    """Read an MMEngine-style config (a dict or a file) into a ``RunnerSpec``.

    Example:
        >>> spec = parse_runner_config(dict(
        ...     model=dict(type="torch.nn.Linear", in_features=2, out_features=1),
        ...     train_cfg=dict(by_epoch=True, max_epochs=10, val_interval=2),
        ...     optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.001, momentum=0.9)),
        ...     default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2))))
        >>> spec.trainer_kwargs["max_epochs"], spec.trainer_kwargs["default_callbacks"]
        (10, {'checkpoint': {'interval': 2}})
    """
    config = load_config(cfg, cfg_options)
    if isinstance(cfg, (str, os.PathLike)) and config.get("work_dir") is None:
        config["work_dir"] = f"work_dirs/{Path(cfg).stem}"  # as MMEngine's tools/train.py
    _check_fields(config)
    mapper = _Mapper(config, import_custom_modules(config.get("custom_imports")))
    return mapper.spec()


def _check_fields(config: Mapping[str, Any]) -> None:
    mmcv = mmcv_fields(config)
    if mmcv:
        raise ValueError(
            f"this is an MMCV runner config (it has {mmcv}), which the Trainer does not read; "
            "convert it with: python -m trainer migrate OLD_CONFIG.py > NEW_CONFIG.py")
    for key in config:
        if key in KNOWN_FIELDS:
            continue
        close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1, cutoff=0.85)
        if close:
            raise ValueError(f"config field {key!r} is not one the Trainer reads; did you mean "
                             f"{close[0]!r}? (Rename your own variable if it is one.)")


class _Mapper:
    """Turns each config field into Trainer keywords, notes and builders; one method a field."""

    def __init__(self, config: dict[str, Any], modules: list[types.ModuleType]) -> None:
        self.config = config
        self.modules = modules
        self.kwargs: dict[str, Any] = {}
        self.notes: list[str] = []
        self.pending: dict[str, Any] = {}
        self.trainable = True

    def spec(self) -> RunnerSpec:
        c = self.config
        self.train(c.get("train_cfg"))
        for stage in ("val", "test"):
            self.eval_stage(stage, c.get(f"{stage}_dataloader"), c.get(f"{stage}_cfg"),
                            c.get(f"{stage}_evaluator"))
        self.run_options()
        self.optimizer(c.get("optim_wrapper"), c.get("auto_scale_lr"))
        if c.get("param_scheduler") is not None:
            self.kwargs["param_scheduler"] = self.types_from_modules(c["param_scheduler"])
        self.kwargs.update(callback_kwargs(c, self.modules, self.notes))
        self.randomness(c.get("randomness"))
        self.environment(c.get("env_cfg"), c.get("launcher", "none"))
        self.ignored()
        for note in self.notes:
            log.info("config note: %s", note)
        for name, value in self.pending.items():
            warnings.warn(f"config: {name}={value!r} is read but not applied yet", stacklevel=3)
        loaders = {stage: self.loader_builder(stage) for stage in ("train", "val", "test")}
        return RunnerSpec(
            trainer_kwargs=self.kwargs, config=c, build_model=self.model_builder(),
            build_train_dataloader=loaders["train"], build_val_dataloader=loaders["val"],
            build_test_dataloader=loaders["test"], notes=self.notes, pending=self.pending,
            trainable=self.trainable)

    def train(self, cfg: Any) -> None:
        if cfg is not None:
            self.kwargs.update(train_loop_kwargs(cfg, self.modules))
            return
        self.trainable = False
        self.notes.append("no train_cfg: the trainer can validate and test; fit() needs a "
                          "train_cfg such as dict(by_epoch=True, max_epochs=12)")

    def eval_stage(self, stage: str, loader: Any, cfg: Any, evaluator: Any) -> None:
        trio = f"{stage}_dataloader, {stage}_cfg and {stage}_evaluator"
        if loader is not None and cfg is None:
            present = (f"{stage}_dataloader and {stage}_evaluator are" if evaluator is not None
                       else f"{stage}_dataloader is")
            raise ValueError(f"{present} set but {stage}_cfg is not: add "
                             f"{stage}_cfg = dict(), that is all that is missing (as in "
                             f"MMEngine, {trio} go together)")
        if loader is None and (cfg is not None or evaluator is not None):
            present = " and ".join(k for k, v in ((f"{stage}_cfg", cfg),
                                                  (f"{stage}_evaluator", evaluator))
                                   if v is not None)
            raise ValueError(f"{present} {'are' if ' and ' in present else 'is'} set but "
                             f"{stage}_dataloader is not; as in MMEngine give {trio} together, "
                             "or none of them")
        if evaluator is not None:
            self.kwargs[f"{stage}_evaluator"] = self.types_from_modules(evaluator)
        if cfg is None:
            return
        loop, fp16 = eval_loop(stage, cfg, self.modules)
        if loop is not None:
            self.kwargs[f"{stage}_loop"] = loop
        if fp16:
            self.pending[f"{stage}_cfg.fp16"] = True

    # ------------------------------------------------------------------ the run
    def run_options(self) -> None:
        c = self.config
        if c.get("work_dir") is not None:
            self.kwargs["work_dir"] = c["work_dir"]
        if c.get("load_from") is not None:
            self.kwargs["load_from"] = c["load_from"]
        if "resume" in c:
            self.kwargs["resume"] = c["resume"]
        for key in _PASSED_AS_IS:
            if key in c:
                self.kwargs[key] = c[key]

    def optimizer(self, cfg: Any, auto_scale_lr: Any) -> None:
        if isinstance(cfg, Mapping):
            constructor = cfg.get("constructor")
            if constructor not in (None, "DefaultOptimWrapperConstructor",
                                   "MultiOptimWrapperConstructor"):
                raise NotImplementedError(
                    f"optim_wrapper constructor={constructor!r}: custom optimizer constructors "
                    "are not supported; use paramwise_cfg, or build the optimizer in the "
                    "model's configure_optimizers()")
            cfg = self.types_from_modules(cfg)
        if cfg is not None:
            self.kwargs["optim_wrapper"] = cfg
        if auto_scale_lr is None:
            return
        asl = dict(expect_mapping(auto_scale_lr, "auto_scale_lr",
                                  "dict(enable=True, base_batch_size=256)"))
        unknown = sorted(set(asl) - {"enable", "base_batch_size"})
        if unknown:
            raise ValueError(f"auto_scale_lr has unknown keys {unknown}; it takes enable and "
                             "base_batch_size")
        if asl.get("enable", False):  # MMEngine scales only with enable=True
            self.kwargs["auto_scale_lr"] = {**asl, "enable": True}

    # ------------------------------------------------------------------ environment
    def randomness(self, cfg: Any) -> None:
        if cfg is None:
            return
        cfg = dict(expect_mapping(cfg, "randomness", "dict(seed=0, deterministic=False)"))
        unknown = sorted(set(cfg) - {"seed", "deterministic", "diff_rank_seed"})
        if unknown:
            raise ValueError(f"randomness has unknown keys {unknown}; it takes seed, "
                             "deterministic and diff_rank_seed")
        self.kwargs.update(cfg)

    def environment(self, env_cfg: Any, launcher: Any) -> None:
        env = dict(expect_mapping(env_cfg or {}, "env_cfg", "dict(cudnn_benchmark=False)"))
        unknown = sorted(set(env) - {"cudnn_benchmark", "mp_cfg", "dist_cfg", "resource_limit"})
        if unknown:
            raise ValueError(f"env_cfg has unknown keys {unknown}; it takes cudnn_benchmark, "
                             "mp_cfg, dist_cfg and resource_limit")
        if env.get("cudnn_benchmark"):
            self.pending["env_cfg.cudnn_benchmark"] = True
        for key in ("mp_cfg", "resource_limit"):
            if env.get(key) is not None:
                self.notes.append(f"env_cfg.{key}={env[key]!r} is ignored: the Trainer starts "
                                  "its worker processes itself")
        dist_cfg = dict(env.get("dist_cfg") or {})
        if dist_cfg.pop("backend", None) is not None:
            self.notes.append("env_cfg.dist_cfg.backend is ignored: the backend is nccl on CUDA "
                              "and gloo on CPU")
        options = self.ddp_options(dist_cfg)
        if launcher not in (None, "none"):
            if launcher != "pytorch":
                raise NotImplementedError(
                    f"launcher={launcher!r} is not supported; use 'none' (one process) or "
                    "'pytorch' (processes started by torchrun)")
            if "RANK" not in os.environ and not dist.is_distributed():
                raise ValueError("launcher='pytorch' needs processes started by torchrun, e.g. "
                                 "torchrun --nproc_per_node=2 -m trainer train CONFIG "
                                 "--launcher pytorch; in a single process use launcher='none'")
            self.kwargs.setdefault("strategy", "ddp")
        strategy = self.kwargs.get("strategy", "auto")
        distributed = strategy != "auto" or self.config.get("devices", 1) != 1
        if options and distributed:
            base = dict(strategy) if isinstance(strategy, Mapping) else {"type": "ddp"}
            self.kwargs["strategy"] = {**options, **base}
        elif options:
            self.notes.append(f"DDP options {options} are ignored in a single process")

    def ddp_options(self, dist_cfg: dict[str, Any]) -> dict[str, Any]:
        """``strategy`` options from ``model_wrapper_cfg``, ``sync_bn`` and ``dist_cfg``."""
        wrapper = dict(expect_mapping(
            self.config.get("model_wrapper_cfg") or {}, "model_wrapper_cfg",
            "dict(type='MMDistributedDataParallel', find_unused_parameters=True)"))
        kind = wrapper.pop("type", "MMDistributedDataParallel")
        if kind not in ("MMDistributedDataParallel", "DistributedDataParallel"):
            raise NotImplementedError(f"model_wrapper_cfg type={kind!r} is not supported; the "
                                      "Trainer wraps the model in DistributedDataParallel")
        options = {k: wrapper.pop(k) for k in ("find_unused_parameters", "broadcast_buffers")
                   if k in wrapper}
        if self.config.get("find_unused_parameters") is not None:
            options.setdefault("find_unused_parameters", self.config["find_unused_parameters"])
        if self.config.get("sync_bn"):
            options["sync_batchnorm"] = True
        if "timeout" in dist_cfg:
            options["timeout_s"] = float(dist_cfg.pop("timeout"))
        for key in sorted({**wrapper, **dist_cfg}):
            self.notes.append(f"{key} of model_wrapper_cfg/dist_cfg is ignored")
        return options

    def ignored(self) -> None:
        c = self.config
        if c.get("default_scope") is not None:
            self.notes.append(f"default_scope={c['default_scope']!r} is ignored: there are no "
                              "registry scopes; types are names or import paths")
        if c.get("log_level") is not None:
            self.notes.append(f"log_level={c['log_level']!r} is ignored")
        if c.get("experiment_name") is not None:
            self.notes.append("experiment_name is ignored: runs are named by their timestamp")

    # ------------------------------------------------------------------ builders
    def model_builder(self) -> Callable[[], nn.Module] | None:
        model = self.config.get("model")
        if model is None:
            return None
        if isinstance(model, nn.Module):
            return lambda: model
        if isinstance(model, type):
            return lambda: _checked_model(model(), "model")
        cfg = dict(expect_mapping(model, "model", "dict(type='mypkg.models.Net', ...)"))
        if self.config.get("data_preprocessor") is not None:
            cfg.setdefault("data_preprocessor", self.config["data_preprocessor"])
        modules = self.modules

        def build() -> nn.Module:
            kwargs = dict(cfg)
            if isinstance(kwargs.get("data_preprocessor"), Mapping):
                kwargs["data_preprocessor"] = build_object(
                    kwargs["data_preprocessor"], {"BaseDataPreprocessor": BaseDataPreprocessor},
                    "model.data_preprocessor", modules)
            return _checked_model(build_object(kwargs, {}, "model", modules), "model")
        return build

    def loader_builder(self, stage: str) -> Callable[[], Any] | None:
        cfg = self.config.get(f"{stage}_dataloader")
        if cfg is None or (stage == "train" and not self.trainable):
            return None
        modules = self.modules
        return lambda: build_dataloader(cfg, f"{stage}_dataloader", modules,
                                        shuffle_default=stage == "train")

    def types_from_modules(self, value: Any) -> Any:
        """Bare ``type`` names defined in a ``custom_imports`` module, as the objects."""
        if not self.modules:
            return value
        if isinstance(value, Mapping):
            out = {k: self.types_from_modules(v) for k, v in value.items()}
            name = out.get("type")
            if isinstance(name, str) and "." not in name:
                for module in self.modules:
                    if hasattr(module, name):
                        out["type"] = getattr(module, name)
                        break
            return out
        if isinstance(value, list):
            return [self.types_from_modules(v) for v in value]
        return value


def _checked_model(model: Any, what: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} built a {type(model).__name__}, not a torch nn.Module")
    return model
