"""The command line: ``python -m trainer {train,test,migrate,print-config,convert-ema,
consolidate,plot}``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from trainer.config.load import format_config, load_config, parse_cfg_options

_EPILOG = """\
examples:
  python -m trainer train configs/net.py
  python -m trainer train configs/net.py --work-dir work_dirs/try2 \\
      --cfg-options optim_wrapper.optimizer.lr=0.01 train_cfg.max_epochs=24
  python -m trainer train configs/net.py --resume            # latest checkpoint in work_dir
  torchrun --nproc_per_node=2 -m trainer train configs/net.py --launcher pytorch
  python -m trainer test configs/net.py work_dirs/net/epoch_12.pth
  python -m trainer migrate old_mmcv_config.py > configs/net.py
  python -m trainer print-config configs/net.py --cfg-options train_cfg.max_epochs=1
  python -m trainer convert-ema work_dirs/net/epoch_12.pth net_for_mmengine.pth --to mmengine
  python -m trainer consolidate work_dirs/net/epoch_12.pth net_epoch_12.pth   # FSDP -> one file
  python -m trainer plot work_dirs/net -o curves.png

A config is a Python file of top-level assignments (MMEngine's fields: model,
train_dataloader, train_cfg, optim_wrapper, param_scheduler, default_hooks, ...), or
JSON/YAML. See docs/config.md for every field and docs/migration.md for MMCV configs.
"""
_CFG_OPTIONS_HELP = (
    "override config values, as KEY=VALUE pairs with dotted keys, e.g. "
    "optim_wrapper.optimizer.lr=0.01 train_cfg.max_iters=100 param_scheduler.0.end=50; "
    "values are Python literals ([6,8], True, None, 'x') or plain words")
_BUILD_ERRORS = (ValueError, TypeError, KeyError, ImportError, FileNotFoundError,
                 NotImplementedError, SyntaxError)
# What a user's mistake raises anywhere in a command (a missing checkpoint, a used work_dir, a
# misspelt metric found by the sanity pass): one line and exit status 2, unless --debug.
_USER_ERRORS = (*_BUILD_ERRORS, FileExistsError, FloatingPointError)
_DEBUG_HELP = "show the full traceback of an error instead of one line"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m trainer``."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train, test and convert configs with trainer's Trainer.", epilog=_EPILOG)
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = _config_command(
        commands, "train", help="train the model of a config",
        description="Train the model of CONFIG: build the Trainer with Trainer.from_config and "
                    "call fit(). Checkpoints, logs and the resolved config go to the work_dir.")
    train.add_argument("--work-dir", metavar="DIR",
                       help="where checkpoints and logs go (default: the config's work_dir, or "
                            "work_dirs/<config name>)")
    train.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                       help="resume training: from CHECKPOINT, or without a value from the "
                            "latest checkpoint in the work_dir (a fresh start if there is none)")
    train.add_argument("--amp", action="store_true",
                       help="mixed precision: optim_wrapper type AmpOptimWrapper with a dynamic "
                            "loss scale")
    train.add_argument("--auto-scale-lr", action="store_true",
                       help="scale the learning rate by (processes x batch size) / "
                            "auto_scale_lr.base_batch_size")

    test = _config_command(
        commands, "test", help="test a checkpoint with a config's test_dataloader",
        description="Load CHECKPOINT's weights into the config's model, run the test loop over "
                    "test_dataloader with test_evaluator, and print the metrics as JSON.")
    test.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint path or URL")
    test.add_argument("--work-dir", metavar="DIR", help="where the test log goes")

    migrate = commands.add_parser(
        "migrate", help="rewrite an MMCV runner config in the new form",
        description="Print CONFIG, an MMCV runner config (runner, lr_config, optimizer_config, "
                    "checkpoint_config, log_config, evaluation, data, ...), rewritten as a "
                    "config the Trainer reads. What cannot be mapped is listed in NOTE "
                    "comments at the top.",
        epilog="example:\n  python -m trainer migrate old.py > new.py",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    migrate.add_argument("config", metavar="CONFIG", help="the MMCV config file")
    migrate.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    migrate.add_argument("--epoch-length", type=int, metavar="N",
                         help="iterations per epoch of the training data; makes exact the "
                              "iteration-based schedules of an epoch-based run")

    show = commands.add_parser(
        "print-config", help="print a config with inheritance and overrides resolved",
        description="Print CONFIG after _base_ inheritance, --cfg-options and ${...} "
                    "references, as the Trainer will read it.")
    show.add_argument("config", metavar="CONFIG", help="the config file")
    show.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", help=_CFG_OPTIONS_HELP)

    ema = commands.add_parser(
        "convert-ema", help="convert an EMA checkpoint to MMEngine's layout or back",
        description="Write SRC to DST with its EMA weights in the layout of --to: 'mmengine' "
                    "(state_dict is the average, as MMEngine's EMAHook saves) or 'trainer' "
                    "(state_dict the raw weights, ema_state_dict the average).")
    ema.add_argument("src", metavar="SRC", help="the checkpoint to read")
    ema.add_argument("dst", metavar="DST", help="where to write the converted checkpoint")
    ema.add_argument("--to", choices=("mmengine", "trainer"), default="mmengine",
                     help="the layout to write (default: mmengine)")

    consolidate = commands.add_parser(
        "consolidate", help="turn a sharded (FSDP) checkpoint directory into one file",
        description="Read the torch.distributed.checkpoint directory DIR that a "
                    "Trainer(strategy='fsdp') run wrote and write its meta and full weights "
                    "to FILE, an ordinary checkpoint that torch.load(weights_only=True) and "
                    "Trainer.test(ckpt_path=FILE) read. Both may be fsspec URLs.")
    consolidate.add_argument("directory", metavar="DIR", help="the sharded checkpoint")
    consolidate.add_argument("output", metavar="FILE", help="the file to write")

    plot = commands.add_parser(
        "plot", help="draw a run's curves into a PNG",
        description="Draw WORK_DIR's training loss, learning rate and validation metrics "
                    "against the iteration (joining resumed parts) from its scalars.jsonl "
                    "files into a PNG. Needs matplotlib.")
    plot.add_argument("work_dir", metavar="WORK_DIR", help="the run's work_dir")
    plot.add_argument("-o", "--output", metavar="FILE",
                      help="the PNG to write (default: WORK_DIR/curves.png)")

    for command in commands.choices.values():  # also after the command: train cfg.py --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=_DEBUG_HELP)

    return parser


def _config_command(commands: Any, name: str, **texts: str) -> argparse.ArgumentParser:
    """A command that builds a Trainer from CONFIG: the config, ``--cfg-options``, ``--launcher``."""
    parser = commands.add_parser(name, **texts, epilog=_EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", metavar="CONFIG", help="the config file (.py, .json, .yaml)")
    parser.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", help=_CFG_OPTIONS_HELP)
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="'pytorch' when the processes are started by torchrun "
                             "(default: none, one process)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for a mistake in the config or arguments)."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    config_log = logging.getLogger("trainer.config.runner")
    config_log.addHandler(handler)
    config_log.setLevel(logging.INFO)
    try:
        return _COMMANDS[args.command](args)
    except (_ConfigError, *_USER_ERRORS) as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    finally:
        config_log.removeHandler(handler)


def one_line(err: BaseException) -> str:
    """The error's message on one line (a ``KeyError``'s without the quotes ``str`` adds)."""
    text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    return " ".join(str(text).split()) or type(err).__name__


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options = parse_cfg_options(args.cfg_options or [])
    options["launcher"] = args.launcher
    if getattr(args, "work_dir", None):
        options["work_dir"] = args.work_dir
    return options


class _ConfigError(Exception):
    """A mistake in the config or the arguments: reported in one line, without a traceback."""


def _build(args: argparse.Namespace, options: dict[str, Any]) -> Any:
    from trainer.trainer import Trainer

    try:
        return Trainer.from_config(args.config, options)
    except _BUILD_ERRORS as err:
        raise _ConfigError(f"{args.config}: {err}") from err


def _train(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        if args.amp:
            options.update(_amp_options(load_config(args.config, options)))
    except _BUILD_ERRORS as err:
        raise _ConfigError(f"{args.config}: {err}") from err
    if args.auto_scale_lr:
        options["auto_scale_lr.enable"] = True
    if args.resume == "auto":
        options.update(resume=True, load_from=None)
    elif args.resume is not None:
        options.update(resume=True, load_from=args.resume)
    trainer = _build(args, options)
    if trainer.config.get("train_cfg") is None:
        raise _ConfigError(f"{args.config} has no train_cfg, so there is nothing to train; "
                           "add train_cfg = dict(by_epoch=True, max_epochs=12)")
    if trainer.model is None or trainer.train_dataloader is None:
        raise _ConfigError(f"{args.config} needs a model and a train_dataloader to train")
    trainer.fit()
    print(f"trained to epoch {trainer.epoch}, iteration {trainer.iter}; checkpoints in "
          f"{trainer.work_dir}", file=sys.stderr)
    return 0


def _amp_options(config: dict[str, Any]) -> dict[str, Any]:
    """MMEngine's ``--amp``: every optimizer wrapper becomes an ``AmpOptimWrapper``."""
    wrapper = config.get("optim_wrapper")
    if not isinstance(wrapper, dict):
        raise ValueError("--amp needs optim_wrapper to be a dict in the config, e.g. "
                         "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))")
    prefixes = (["optim_wrapper"] if "optimizer" in wrapper or "type" in wrapper
                else [f"optim_wrapper.{k}" for k, v in wrapper.items() if isinstance(v, dict)])
    options: dict[str, Any] = {}
    for prefix in prefixes:
        options[f"{prefix}.type"] = "AmpOptimWrapper"
        options[f"{prefix}.loss_scale"] = "dynamic"
    return options


def _test(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
    except _BUILD_ERRORS as err:
        raise _ConfigError(str(err)) from err
    trainer = _build(args, options)
    if trainer.model is None or trainer.test_dataloader is None:
        raise _ConfigError(f"{args.config} needs a model, a test_dataloader and a test_cfg "
                           "(and usually a test_evaluator) to test")
    metrics = trainer.test(ckpt_path=args.checkpoint)
    print(json.dumps(metrics, default=str))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from trainer.config.migrate.mmcv import migrate_file

    try:
        text = migrate_file(args.config, epoch_length=args.epoch_length)
    except _BUILD_ERRORS as err:
        raise _ConfigError(f"{args.config}: {err}") from err
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _print_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, parse_cfg_options(args.cfg_options or []))
    except _BUILD_ERRORS as err:
        raise _ConfigError(f"{args.config}: {err}") from err
    sys.stdout.write(format_config(config))
    return 0


def _convert_ema(args: argparse.Namespace) -> int:
    from trainer.compat.ema import convert_ema_file

    try:
        layout = convert_ema_file(args.src, args.dst, args.to)
    except _BUILD_ERRORS as err:
        raise _ConfigError(f"{args.src}: {err}") from err
    print(f"{args.src} ({layout} layout) -> {args.dst} ({args.to} layout)", file=sys.stderr)
    return 0


def _consolidate(args: argparse.Namespace) -> int:
    from trainer.checkpoint.sharded import consolidate

    try:
        consolidate(args.directory, args.output)
    except (ValueError, FileNotFoundError) as err:
        raise _ConfigError(str(err)) from err
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from trainer.plot import plot_run

    try:
        path = plot_run(args.work_dir, args.output)
    except (FileNotFoundError, ValueError, ImportError) as err:
        raise _ConfigError(str(err)) from err
    print(path)
    return 0


_COMMANDS = {"train": _train, "test": _test, "migrate": _migrate, "print-config": _print_config,
             "convert-ema": _convert_ema, "consolidate": _consolidate, "plot": _plot}

