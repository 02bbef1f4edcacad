"""``Trainer``: the thin facade that validates arguments, builds the run and hands it to a loop."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainer import arguments, checkpoint, dist
from trainer.callbacks.base import Callback
from trainer.callbacks.callback_list import CallbackList, hook_keywords
from trainer.callbacks.defaults import build_callbacks
from trainer.checkpoint import interrupt, workdir
from trainer.checkpoint.manager import CheckpointMixin, callback_keys
from trainer.compat.runner import RunnerAttributes
from trainer.compile import check_compile, compile_model
from trainer.dist import fsdp, launch
from trainer.dist.strategy import Strategy, parse_strategy
from trainer.evaluation.evaluator import Evaluator
from trainer.loggers import build_loggers
from trainer.loops import (
    BaseTrainLoop,
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    TestLoop,
    ValLoop,
    loader_length,
)
from trainer.message_hub import MessageHub
from trainer.model import check_model
from trainer.nonfinite import NonFiniteCheck
from trainer.optim import build_optim_wrapper_for, scale_lr
from trainer.optim.accumulators import gradient_accumulators_kept
from trainer.randomness import set_random_seed
from trainer.sanity import check_before_training
from trainer.schedulers import build_param_schedulers
from trainer.state import TrainState, run_length
from trainer.suggestions import check_keywords, keyword_names


class Trainer(CheckpointMixin, RunnerAttributes):
    """Train, validate, test and predict with MMEngine's runner semantics and Lightning's facade.

    Args:
        max_epochs: epochs of epoch-based training (exclusive with ``max_iters``).
        max_iters: iterations of iteration-based training (exclusive with ``max_epochs``).
        val_interval: validate every this many epochs (epoch-based, default 1) or iterations
            (iteration-based, default 1000), and at the end of training.
        val_begin: first epoch/iteration after which validation may run.
        work_dir: where checkpoints and logs go; a local path or any fsspec URL.
        resume: resume from ``load_from``, or from the latest checkpoint in ``work_dir``.
        load_from: a checkpoint to resume from (``resume=True``) or load weights from.
        optim_wrapper: an ``OptimWrapper``, a torch optimizer or an MMEngine-style dict; when
            ``None`` the model's ``configure_optimizers()`` is used.
        param_scheduler: a scheduler or dict (MMEngine style), or a list of them.
        val_evaluator: torchmetrics metric(s) or an MMEngine-style metric for validation.
        test_evaluator: the same for testing (defaults to ``val_evaluator``).
        callbacks: extra callbacks, as objects or ``dict(type="Name", ...)``.
        default_callbacks: per default callback name, keyword overrides (a dict), a replacement
            ``Callback``, or ``None`` to switch it off.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"``.
        accelerator: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        devices: number of devices (processes) to train on.
        strategy: ``"auto"``, ``"ddp"``, ``"fsdp"``, ``dict(type="fsdp", wrap=[Block], ...)``
            (see ``trainer.dist.fsdp.FSDPOptions``) or ``dict(type="ddp", find_unused_parameters=...,
            broadcast_buffers=..., sync_batchnorm=..., timeout_s=...)``.
        auto_scale_lr: ``dict(base_batch_size=N, enable=True)`` scales every learning rate by
            (batch size x processes) / N, as MMEngine does; nothing is scaled otherwise.
        seed: seed for Python, NumPy and torch; ``None`` leaves the RNGs alone.
        deterministic: ask torch for deterministic algorithms.
        diff_rank_seed: give each rank ``seed + rank``.
        log_interval: iterations between log lines.
        on_nonfinite: what a NaN or infinite training loss does: ``"raise"`` (FloatingPointError
            naming the iteration and loss key, before anything is saved), ``"warn"`` (once) or
            ``"ignore"``; checked every ``log_interval`` iterations and before every save and
            validation, without a per-iteration host sync.
        interrupt_signals: signals that make ``fit`` finish the current iteration, save
            ``work_dir/interrupted_iter_{n}.pth`` and exit with 128 + the signal's number;
            Ctrl-C always does the same and re-raises ``KeyboardInterrupt``.
        compile: ``True`` or ``dict(mode=..., fullgraph=..., dynamic=..., regional=False)``:
            ``torch.compile`` the model in place before training (before DDP wrapping);
            ``regional=True`` compiles each repeated block instead of the whole model.
        loggers: where logged scalars go: names or dicts, ``"jsonl"`` (``scalars.jsonl``, the
            default), ``"csv"``, ``"tensorboard"``, ``dict(type="mlflow", tracking_uri=...,
            experiment=...)``, ``dict(type="wandb", project=..., mode="offline")``.
        train_loop, val_loop, test_loop: loop classes to use instead of the built-in ones, or
            ``dict(type=LoopClass, **options)`` for options of the loop's own, such as the
            train loops' ``dynamic_intervals=[(milestone, val_interval), ...]``.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> from trainer.datasets import digits_splits
        >>> from trainer.demo import DigitsNet
        >>> train_set, val_set, test_set = digits_splits()
        >>> trainer = Trainer(max_iters=40, val_interval=20, work_dir="work_dirs/digits", seed=0,
        ...                   optim_wrapper=dict(optimizer=dict(type="AdamW", lr=3e-3)),
        ...                   val_evaluator={"acc": MulticlassAccuracy(num_classes=10)},
        ...                   default_callbacks={"progress": None, "logger": None})
        >>> _ = trainer.fit(DigitsNet(), DataLoader(train_set, batch_size=32, shuffle=True),
        ...                 DataLoader(val_set, batch_size=256))
        >>> trainer.iter, trainer.epoch, len(train_set) // 32 + 1  # 40 batches make one epoch
        (40, 1, 40)
        >>> metrics = trainer.test(dataloader=DataLoader(test_set, batch_size=256),
        ...                        ckpt_path="last")
        >>> metrics["acc"] > 0.8
        True
    """

    def __init__(
        self,
        *,
        max_epochs: int | None = None,
        max_iters: int | None = None,
        val_interval: int | None = None,
        val_begin: int = 1,
        work_dir: str | os.PathLike = "work_dirs",
        resume: bool = False,
        load_from: str | os.PathLike | None = None,
        optim_wrapper: Any = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        callbacks: Sequence[Callback | Mapping] | None = None,
        default_callbacks: Mapping[str, Any] | None = None,
        precision: str = "32",
        accelerator: str = "auto",
        devices: int = 1,
        strategy: str | Mapping[str, Any] = "auto",
        auto_scale_lr: Mapping[str, Any] | None = None,
        seed: int | None = None,
        deterministic: bool = False,
        diff_rank_seed: bool = False,
        log_interval: int = 50,
        loggers: Sequence[str | Mapping[str, Any]] | None = ("jsonl",),
        on_nonfinite: str = "raise",
        interrupt_signals: Sequence[str] = ("SIGTERM",),
        compile: bool | Mapping[str, Any] = False,
        train_loop: type[BaseTrainLoop] | Mapping[str, Any] | None = None,
        val_loop: type[ValLoop] | Mapping[str, Any] = ValLoop,
        test_loop: type[TestLoop] | Mapping[str, Any] = TestLoop,
        num_sanity_val_batches: int = 2,
        **unknown: Any,
    ) -> None:
        check_keywords("Trainer", unknown, keyword_names(Trainer))
        self._init_kwargs = {k: v for k, v in locals().items()  # for cfg
                             if k not in ("self", "unknown")}
        arguments.check_run_length(max_epochs, max_iters)
        by_epoch = max_epochs is not None
        self.by_epoch = by_epoch
        self.val_interval = arguments.check_positive_int(
            "val_interval", val_interval if val_interval is not None else (1 if by_epoch else 1000))
        self.val_begin = arguments.check_positive_int("val_begin", val_begin)
        if isinstance(work_dir, os.PathLike):
            work_dir = os.fspath(work_dir)
        if not isinstance(work_dir, str) or not work_dir:
            raise TypeError(f"work_dir must be a non-empty path or URL string, got {work_dir!r}")
        self.work_dir = work_dir.rstrip("/")
        workdir.check_work_dir(self.work_dir)
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if isinstance(load_from, os.PathLike):
            load_from = os.fspath(load_from)
        if load_from is not None and not isinstance(load_from, str):
            raise TypeError(f"load_from must be a checkpoint path or URL, got {load_from!r}")
        self._resume, self._load_from = resume, load_from
        arguments.check_optim_wrapper_types(optim_wrapper)
        arguments.check_scheduler_types(param_scheduler)
        self._optim_wrapper_cfg = optim_wrapper
        self._param_scheduler_cfg = param_scheduler
        self.val_evaluator = Evaluator.build(val_evaluator, name="val_evaluator")
        self.test_evaluator = (
            self.val_evaluator if test_evaluator is None
            else Evaluator.build(test_evaluator, name="test_evaluator"))
        self.precision = arguments.check_choice("precision", precision, arguments.PRECISIONS)
        self.accelerator = arguments.check_accelerator(accelerator)
        self.devices = arguments.check_positive_int("devices", devices)
        self.strategy = Strategy(*parse_strategy(strategy), devices=self.devices,
                                 device_type=arguments.resolve_device(self.accelerator).type,
                                 precision=self.precision)
        self.auto_scale_lr = arguments.check_auto_scale_lr(auto_scale_lr)
        self.log_interval = arguments.check_positive_int("log_interval", log_interval)
        self.nonfinite = NonFiniteCheck(on_nonfinite, self.log_interval)
        self.interrupt_signals = interrupt.check_signals(interrupt_signals)
        self.interrupts = interrupt.InterruptGuard(self.interrupt_signals)
        self.compile_options = check_compile(compile)
        if seed is not None and not arguments.is_int(seed):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._randomness = (seed, deterministic, diff_rank_seed)
        self.setup_distributed()
        self._loops = {  # stage -> (loop class, its extra constructor options)
            "train": arguments.check_loop("train_loop", train_loop or (
                EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop), BaseTrainLoop),
            "val": arguments.check_loop("val_loop", val_loop, ValLoop),
            "test": arguments.check_loop("test_loop", test_loop, TestLoop)}
        self._run_length = (max_epochs, max_iters)  # as asked; fit settles both for its loader
        self.num_sanity_val_batches = arguments.check_non_negative_int(
            "num_sanity_val_batches", num_sanity_val_batches)
        self.sanity_checking = False  # True while the sanity pass runs
        self.state = TrainState(max_epochs=max_epochs, max_iters=max_iters)
        self.message_hub = MessageHub()
        self.timestamp = time.strftime("%Y%m%d_%H%M%S")
        self.log_dir = checkpoint.join(self.work_dir, self.timestamp)
        jsonl, sinks = build_loggers(loggers)
        self.callbacks = CallbackList(
            build_callbacks(callbacks, default_callbacks, by_epoch=by_epoch,
                            val_interval=self.val_interval, jsonl=jsonl) + sinks)
        if self.strategy.kind == "fsdp":
            fsdp.check_arguments(self.work_dir, self.precision, self.callbacks)
        self.model: nn.Module | None = None
        self.wrapped_model: nn.Module | None = None  # what the loops call: DDP-wrapped or model
        self.optim_wrapper: Any = None
        self.param_schedulers: list[Any] = []
        self.train_dataloader: Iterable | None = None
        self.val_dataloader: Iterable | None = None
        self.test_dataloader: Iterable | None = None
        self.train_loop: BaseTrainLoop | None = None
        self.val_loop: ValLoop | None = None  # the loops built last, as MMEngine's runner has
        self.test_loop: TestLoop | None = None
        self.config: dict[str, Any] | None = None  # the resolved run config, from from_config

    # Public state read by callbacks.
    epoch = property(lambda self: self.state.epoch)
    iter = property(lambda self: self.state.iter)
    max_epochs = property(lambda self: self.state.max_epochs)
    max_iters = property(lambda self: self.state.max_iters)

    @property
    def stop_training(self) -> bool:
        return self.state.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.state.stop_training = bool(value)

    def setup_distributed(self) -> None:
        """Join the process group when there is one; pick the device; seed this rank."""
        self.device = self.strategy.setup()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        seed, deterministic, diff_rank_seed = self._randomness
        self.seed = None if seed is None else set_random_seed(seed, deterministic, diff_rank_seed)

    def worker_result(self) -> dict[str, Any]:
        """What rank zero of spawned workers hands back to the calling process (every rank calls
        it: gathering sharded weights is a collective)."""
        return {"state_dict": self.strategy.full_state_dict(self.model),
                "state": {k: getattr(self.state, k) for k in ("epoch", "iter", "batch_idx")},
                "world_size": self.world_size,
                "message_hub": self.message_hub.state_dict(),
                "callbacks": {key: cb.state_dict() for key, cb in
                              zip(callback_keys(self.callbacks), self.callbacks)}}

    def _adopt_worker_result(self, result: dict[str, Any]) -> None:
        """The caller takes rank zero's place: its weights, state, and how many ranks trained."""
        self.model.load_state_dict(result["state_dict"])
        self.rank, self.world_size = 0, result["world_size"]
        for key, value in result["state"].items():
            setattr(self.state, key, value)
        self.message_hub.load_state_dict(result["message_hub"])
        for key, cb in zip(callback_keys(self.callbacks), self.callbacks):
            cb.load_state_dict(result["callbacks"][key])

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for evaluation steps at the training precision (nothing in full precision)."""
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16-mixed" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def call_hook(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Call hook ``name`` on every callback that defines it, in priority order.

        The hook's arguments come positionally in MMEngine's order (``batch_idx, data_batch,
        outputs``; ``metrics``; ``checkpoint``) or, as MMEngine's ``runner.call_hook`` takes
        them, by keyword; a keyword left out is ``None``. The training loops hand
        ``before_train_iter`` and ``after_train_iter`` to ``trainer.callbacks`` directly, so an
        override of this method does not see those two.
        """
        if kwargs:
            names = hook_keywords(name)
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError(f"call_hook({name!r}) got unexpected keywords {sorted(unknown)}; "
                                f"{name} takes {list(names)}")
            args = (*args, *(kwargs.get(k) for k in names[len(args):]))
        self.callbacks.call(name, self, *args)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | str,
                    cfg_options: Mapping[str, Any] | None = None) -> Trainer:
        """A trainer from an MMEngine-style config (a dict or a ``.py`` file).

        The config's model and dataloaders are kept, so ``fit()``, ``validate()`` and ``test()``
        need no arguments.
        """
        from trainer.config.runner import parse_runner_config

        spec = parse_runner_config(cfg, cfg_options)
        trainer = cls(**spec.trainer_kwargs)  # seeds first, so the model's init is seeded too
        trainer.config = spec.config
        if spec.build_model is not None:
            trainer._set_model(spec.build_model())
        for stage in ("train", "val", "test"):
            build = getattr(spec, f"build_{stage}_dataloader")
            setattr(trainer, f"{stage}_dataloader", build() if build is not None else None)
        return trainer

    def fit(self, model: nn.Module | None = None, train_dataloader: Iterable | None = None,
            val_dataloader: Iterable | None = None, ckpt_path: str | None = None) -> None:
        """Train ``model`` to ``max_epochs``/``max_iters``; ``ckpt_path`` resumes from a file.

        ``model`` and the loaders default to those of ``from_config``. Returns ``None`` (the
        model, the caller's object, holds the trained weights), so a notebook cell ending in
        ``fit(...)`` shows nothing.
        """
        source = self._take_fit_inputs(model, train_dataloader, val_dataloader, ckpt_path)
        if self.strategy.needs_spawn:
            self._adopt_worker_result(launch.run_workers(self, self.devices, "fit", (
                self.model, self.train_dataloader, val_dataloader, ckpt_path)))
            return
        train_loader = self.strategy.train_loader(self.train_dataloader, self.seed or 0)
        self._settle_run_length(train_loader)
        model_schedulers = self._build_optimization()
        self.train_loop = self._build_train_loop(train_loader)
        self._build_param_schedulers(model_schedulers)
        self._dump_config()
        with self._running():
            self._load_or_resume(source)
            with interrupt.saving_interruptions(self):
                if not self._resumed_a_finished_run():
                    check_before_training(self, self.train_loop.val_loop)
                    with gradient_accumulators_kept(self.model):
                        self.train_loop.run()
                    self.nonfinite.check()

    def validate(self, model: nn.Module | None = None, dataloader: Iterable | None = None,
                 ckpt_path: str | None = None) -> dict[str, Any]:
        """Run the validation loop once and return its metrics."""
        loop = self._eval_loop("val", model, dataloader)
        return self._run_standalone(loop.run, ckpt_path)

    def test(self, model: nn.Module | None = None, dataloader: Iterable | None = None,
             ckpt_path: str | None = None) -> dict[str, Any]:
        """Run the test loop once and return its metrics (logged as ``test/<name>``)."""
        loop = self._eval_loop("test", model, dataloader)
        return self._run_standalone(loop.run, ckpt_path)

    def predict(self, model: nn.Module | None = None, dataloader: Iterable | None = None,
                ckpt_path: str | None = None) -> list[Any]:
        """``model.predict_step`` of every batch, in order."""
        self._prepare_eval("predict", model)
        loader = arguments.check_dataloader(
            "dataloader", dataloader if dataloader is not None else self.test_dataloader)

        def run() -> list[Any]:
            self.model.eval()
            with torch.no_grad(), self.autocast():
                return [self.model.predict_step(batch) for batch in loader]

        return self._run_standalone(run, ckpt_path)

    # Internals.
    def _take_fit_inputs(self, model: Any, train_dataloader: Any, val_dataloader: Any,
                         ckpt_path: str | None) -> str | None:
        """Check fit's arguments (falling back to ``from_config``'s), adopt them, and prepare the
        work_dir; returns the checkpoint to load or resume from."""
        model = model if model is not None else self.model
        train_dataloader = train_dataloader if train_dataloader is not None \
            else self.train_dataloader
        if model is None:
            raise TypeError("fit() needs a model: fit(model, train_dataloader)")
        arguments.check_run_length(*self._run_length, required=True)
        self._set_model(model)
        self.train_dataloader = arguments.check_dataloader("train_dataloader", train_dataloader)
        if val_dataloader is not None:
            self.val_dataloader = arguments.check_dataloader("val_dataloader", val_dataloader)
        return self.prepare_run(ckpt_path)

    def _settle_run_length(self, train_loader: Iterable) -> None:
        """Both ``max_epochs`` and ``max_iters`` of this run, before anything reads them."""
        self.state.max_epochs, self.state.max_iters = run_length(
            *self._run_length, loader_length(train_loader, "train_dataloader"))

    def _build_optimization(self) -> list[Any]:
        """The wrapped model and the optimizer wrapper; returns the model's own schedulers."""
        compile_model(self.model, self.compile_options)  # compiled before DDP wraps it
        self.wrapped_model = self.strategy.wrap_model(self.model, self.device)
        self.optim_wrapper, model_schedulers = build_optim_wrapper_for(
            self._optim_wrapper_cfg, self.model, self.precision, self.device.type)
        if self.strategy.sharded:
            fsdp.check_optimizer(self.optim_wrapper, self.model)
        if self.auto_scale_lr:
            scale_lr(self.optim_wrapper, self.auto_scale_lr["base_batch_size"],
                     getattr(self.train_dataloader, "batch_size", None), self.world_size)
        return model_schedulers or []

    def _build_train_loop(self, train_loader: Iterable) -> BaseTrainLoop:
        val_loop = None
        if self.val_dataloader is not None:
            val_loop = self._make_loop("val", self.strategy.eval_loader(self.val_dataloader),
                                       self.val_evaluator)
        self.val_loop = val_loop
        return self._make_loop(
            "train", train_loader, self.state.max_epochs if self.by_epoch else self.state.max_iters,
            val_loop=val_loop, val_begin=self.val_begin, val_interval=self.val_interval)

    def _make_loop(self, stage: str, *args: Any, **kwargs: Any) -> Any:
        cls, options = self._loops[stage]
        return cls(self, *args, **kwargs, **options)

    def _build_param_schedulers(self, model_schedulers: list[Any]) -> None:
        cfg = self._param_scheduler_cfg
        self.param_schedulers = build_param_schedulers(
            cfg if cfg is not None else model_schedulers, self.optim_wrapper,
            epoch_length=self.train_loop.epoch_length, max_epochs=self.state.max_epochs,
            max_iters=self.state.max_iters)

    def _resumed_a_finished_run(self) -> bool:
        """Whether the counters already stand at the end of the run (and a warning says so)."""
        if self.state.iter < self.state.max_iters:
            return False
        warnings.warn(
            f"the resumed run already finished ({self.state.iter} of max_iters="
            f"{self.state.max_iters} iterations done): nothing to train; raise "
            f"{'max_epochs' if self.by_epoch else 'max_iters'} to continue it", stacklevel=3)
        return True

    def _set_model(self, model: Any) -> None:
        if not isinstance(model, nn.Module) or not callable(getattr(model, "train_step", None)):
            raise TypeError(
                "model must be a trainer.BaseModel (an nn.Module with train_step/val_step), "
                f"got {type(model).__name__}")
        check_model(model)
        self.model = model.to(self.device)
        self.wrapped_model = self.model

    def _dump_config(self) -> None:
        """Write the resolved run config (from ``from_config``) to ``<log_dir>/config.py``."""
        if self.config is not None and dist.is_main_process():
            from trainer.config.load import dump_config

            dump_config(self.config, checkpoint.join(self.log_dir, "config.py"))

    def _prepare_eval(self, stage: str, model: Any) -> None:
        if model is not None:
            self._set_model(model)
        if self.model is None:
            raise ValueError(f"{stage}() needs a model: pass model= or call fit() first")

    def _eval_loop(self, stage: str, model: Any, dataloader: Any) -> Any:
        self._prepare_eval(stage, model)
        if dataloader is not None:
            setattr(self, f"{stage}_dataloader", arguments.check_dataloader("dataloader",
                                                                            dataloader))
        loader = getattr(self, f"{stage}_dataloader")
        if loader is None:
            raise ValueError(f"{stage}: pass dataloader= (there is no {stage}_dataloader yet)")
        evaluator = self.val_evaluator if stage == "val" else self.test_evaluator
        loop = self._make_loop(stage, self.strategy.eval_loader(loader), evaluator)
        setattr(self, f"{stage}_loop", loop)
        return loop

    def _run_standalone(self, run: Any, ckpt_path: str | None) -> Any:
        """``run`` between ``before_run`` and ``after_run``, after loading ``ckpt_path``'s weights."""
        self._dump_config()
        with self._running():
            if ckpt_path is not None:
                self.load_checkpoint(self.resolve_ckpt_path(ckpt_path))
            return run()

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """``before_run`` ... ``after_run``, the latter also when the run fails or is
        interrupted, so every callback closes its files, bars and tracker runs; a callback's
        failing ``after_run`` then is a note on the error that ended the run, which stays the
        error."""
        self.call_hook("before_run")
        try:
            yield
        except BaseException as err:
            for cleanup in self.callbacks.call_each("after_run", self):
                err.add_note(f"after_run failed too: {type(cleanup).__name__}: {cleanup}")
            raise
        self.call_hook("after_run")
