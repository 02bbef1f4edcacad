"""Per-iteration cost of the Trainer over a raw PyTorch loop, measured in one process.

The same model is trained by a hand-written loop and by ``Trainer(max_iters=N)`` with every
default callback on (the progress bar off, or on and writing to a non-terminal stream). Models:
a tiny MLP and a small CNN, batch 32, one CPU thread. Run with
``python benchmarks/overhead.py [--rounds N]``.

A shared machine can change speed by half within a second, more than the overhead being
measured, so two runs timed one after the other (a round of 2,000 iterations lasts about a
second) disagree by more than the overhead: the same code measured 0.95 to 1.25 that way in
one minute. The two loops are therefore interleaved inside each ``fit``: every ``CHUNK``
iterations a callback runs as many raw iterations (their own model, optimizer and loader), so
both are timed within milliseconds of each other from start to end. Each fit gives the whole
run (the fit's time less the raw chunks', over the raw chunks' time: set-up, log lines and the
last checkpoint included), the steady state (the median chunk ratio) and the cost of ``fit``
outside its steady iterations (set-up, the FLOP count of the first iteration, the last
checkpoint) per iteration of the run; the table gives the median of each over the rounds, one
fit per round after one that warms up.

``--breakdown`` measures that steady state instead for parts of the default set: none of the
default callbacks, none and no non-finite check, and each callback that works every iteration
alone, so a change can be traced to the part it touched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator
from itertools import chain, islice, repeat
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trainer.callbacks import Callback

from trainer import BaseModel, Trainer

CHUNK = 20  # iterations per interleaved chunk: a few milliseconds


class TinyMLP(BaseModel):
    input_shape = (32,)
    batch_size = 32

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x, y=None, mode="tensor"):
        logits = self.body(x)
        if mode == "loss":
            return {"loss": self.criterion(logits, y)}
        return logits

    criterion = staticmethod(nn.functional.cross_entropy)

    @classmethod
    def make_data(cls, n: int, generator: torch.Generator) -> TensorDataset:
        return TensorDataset(torch.randn(n, *cls.input_shape, generator=generator),
                             torch.randint(0, 10, (n,), generator=generator))


class SmallCNN(TinyMLP):
    input_shape = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


# The two models the GPU figures are taken on (``--models "ResNet-ish CNN" "small
# transformer"``): large enough that a GPU, not Python, sets the pace of a raw loop.
class Residual(nn.Module):
    """Two 3x3 convolutions with BatchNorm, added to the input (projected when it changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out), nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.skip = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNetish(TinyMLP):
    """A ResNet-18-like stack of four residual blocks (64 to 256 channels) on 32x32 images."""

    input_shape = (3, 32, 32)
    batch_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            Residual(64, 64), Residual(64, 128, 2), Residual(128, 256, 2), Residual(256, 256),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


class SmallTransformer(TinyMLP):
    """A causal language model: 4 pre-norm layers of width 256 (4 heads), 128 tokens of a
    1,024-word vocabulary, predicting every next token."""

    vocabulary, length, width = 1024, 128, 256
    batch_size = 16

    def __init__(self) -> None:
        BaseModel.__init__(self)
        self.embed = nn.Embedding(self.vocabulary, self.width)
        self.position = nn.Parameter(torch.randn(self.length, self.width) * 0.02)
        layer = nn.TransformerEncoderLayer(self.width, 4, 4 * self.width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = nn.Linear(self.width, self.vocabulary)
        self.register_buffer(
            "causal", nn.Transformer.generate_square_subsequent_mask(self.length), persistent=False)

    def forward(self, x, y=None, mode="tensor"):
        hidden = self.layers(self.embed(x) + self.position, mask=self.causal, is_causal=True)
        logits = self.head(hidden)
        if mode == "loss":
            return {"loss": self.criterion(logits, y)}
        return logits

    @staticmethod
    def criterion(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

    @classmethod
    def make_data(cls, n: int, generator: torch.Generator) -> TensorDataset:
        tokens = torch.randint(0, cls.vocabulary, (n, cls.length + 1), generator=generator)
        return TensorDataset(tokens[:, :-1], tokens[:, 1:])


MODELS = {"tiny MLP": TinyMLP, "small CNN": SmallCNN, "ResNet-ish CNN": ResNetish,
          "small transformer": SmallTransformer}


def make_loader(model_cls: type[TinyMLP], iters: int, device: str = "cpu") -> DataLoader:
    """``iters`` batches of random data for ``model_cls``, shuffled, pinned for a GPU."""
    g = torch.Generator().manual_seed(0)
    data = model_cls.make_data(iters * model_cls.batch_size, g)
    return DataLoader(data, batch_size=model_cls.batch_size, shuffle=True,
                      pin_memory=device == "cuda")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def clock(device: str) -> float:
    """CPU time of the process on the CPU (what a busy neighbour steals least of), wall-clock
    time on a GPU, where the host waits for the device."""
    return time.perf_counter() if device == "cuda" else time.process_time()


class RawLoop:
    """The hand-written loop the Trainer is measured against, written as a careful user writes
    it: the same model, data, optimizer, precision (``torch.autocast``) and compiling."""

    def __init__(self, model_cls: type[TinyMLP], device: str, precision: str = "32",
                 compiled: bool = False, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = model_cls().to(device)
        if compiled:
            self.model.compile()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.criterion = model_cls.criterion
        self.autocast = (torch.autocast(device, dtype=torch.bfloat16)
                         if precision == "bf16-mixed" else None)
        self.device = device

    def run(self, batches: Iterator, count: int) -> None:
        """``count`` training iterations on the next batches of ``batches``."""
        model, optimizer, criterion, autocast, device = (
            self.model, self.optimizer, self.criterion, self.autocast, self.device)
        model.train()
        for x, y in islice(batches, count):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if autocast is None:
                loss = criterion(model(x), y)
            else:
                with autocast:
                    loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def raw_loop(model_cls: type[TinyMLP], loader: DataLoader, iters: int, device: str,
             precision: str = "32", compiled: bool = False) -> float:
    loop = RawLoop(model_cls, device, precision, compiled)
    start = clock(device)
    loop.run(iter(loader), iters)
    synchronize(device)
    return clock(device) - start


def trainer_loop(model_cls: type[TinyMLP], loader: DataLoader, iters: int, device: str,
                 progress: bool = False, precision: str = "32", compiled: bool = False) -> float:
    torch.manual_seed(0)
    model = model_cls()
    # stderr is a StringIO: the progress bar writes plain lines, as in a CI log or a job's file.
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory() as work_dir, quiet[0], quiet[1]:
        trainer = Trainer(max_iters=iters, work_dir=work_dir, accelerator=device,
                          precision=precision, compile=compiled,
                          optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                          default_callbacks=default_set(progress))
        start = clock(device)
        trainer.fit(model, loader)
        synchronize(device)
        return clock(device) - start


class Interleave(Callback):
    """After training iteration 0 (which counts FLOPs) and every ``CHUNK`` iterations after it:
    the time of the trainer's chunk just done, then of ``CHUNK`` raw iterations. It is called
    on those iterations only (``skippable_train_iters``), so it adds nothing to the others."""

    priority = "LOWEST"

    def __init__(self, raw: RawLoop, loader: DataLoader) -> None:
        super().__init__()
        self.raw = raw
        self.batches = chain.from_iterable(repeat(loader))  # a new pass when one ends
        self.trainer_times: list[float] = []
        self.raw_times: list[float] = []
        self.mark = 0.0

    def after_train_iter(self, trainer: Trainer, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if trainer.iter % CHUNK:
            return
        device = self.raw.device
        synchronize(device)
        start = clock(device)
        if trainer.iter:
            self.trainer_times.append(start - self.mark)
        self.raw.run(self.batches, CHUNK)
        synchronize(device)
        self.mark = clock(device)
        self.raw_times.append(self.mark - start)

    def skippable_train_iters(self, trainer: Trainer, batch_idx: int) -> int:
        return CHUNK - 1 - trainer.iter % CHUNK


class Round(NamedTuple):
    """One ``fit`` with the raw loop's chunks interleaved, in seconds per iteration and ratios."""

    raw: float  # a raw iteration: the raw chunks' time over their iterations
    trainer: float  # the whole fit (set-up, every iteration, the last checkpoint) per iteration
    whole: float  # trainer / raw
    steady: float  # the median chunk ratio Trainer / raw
    overhead: float  # of a steady iteration: the median trainer chunk, less itself / steady
    fixed: float  # the fit's time outside its steady iterations, per iteration of the run


def interleaved_fit(model_cls: type[TinyMLP], iters: int, device: str,
                    default_callbacks: dict[str, Any], precision: str = "32",
                    compiled: bool = False, **options: Any) -> Round:
    """Time one ``fit`` of ``iters`` iterations with as many raw iterations run in between.

    The whole run is the fit's time less the raw chunks', against the raw chunks' time: both
    sides are timed within milliseconds of each other throughout, so a machine that slows
    down for a while slows both. With compiling, both compilations are in the first chunk
    pair, which the steady medians pass over but the whole run does not.
    """
    probe = Interleave(RawLoop(model_cls, device, precision, compiled, seed=1),
                       make_loader(model_cls, iters, device))
    torch.manual_seed(0)
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory() as work_dir, quiet[0], quiet[1]:
        trainer = Trainer(max_iters=iters, work_dir=work_dir, accelerator=device,
                          callbacks=[probe], precision=precision, compile=compiled,
                          optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                          default_callbacks=default_callbacks, **options)
        model, loader = model_cls(), make_loader(model_cls, iters, device)
        start = clock(device)
        trainer.fit(model, loader)
        synchronize(device)
        total = clock(device) - start
    raw_total = sum(probe.raw_times)
    raw = raw_total / (CHUNK * len(probe.raw_times))
    ours = (total - raw_total) / iters
    steady = statistics.median(t / r for t, r in zip(probe.trainer_times, probe.raw_times))
    per_iter = statistics.median(probe.trainer_times) / CHUNK
    uncounted = iters - 1 - CHUNK * len(probe.trainer_times)  # after the last whole chunk
    fixed = total - raw_total - sum(probe.trainer_times) - uncounted * per_iter
    return Round(raw, ours, ours / raw, steady, per_iter - per_iter / steady, fixed / iters)


def default_set(progress: bool) -> dict[str, Any]:
    """``default_callbacks`` for every default callback, the progress bar on or off."""
    return {} if progress else {"progress": None}


# What each part of the default set costs: the Trainer with none of its default callbacks,
# without the non-finite check, and with one default callback at a time.
ITERATION_CALLBACKS = ("runtime_info", "timer", "logger", "param_scheduler", "checkpoint")
NO_CALLBACKS = dict.fromkeys((*ITERATION_CALLBACKS, "sampler_seed", "progress"))
BREAKDOWN: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults, bar off": (default_set(False), {}),
    "no default callbacks": (NO_CALLBACKS, {}),
    "none, on_nonfinite=ignore": (NO_CALLBACKS, {"on_nonfinite": "ignore"}),
    **{f"only {name}": ({**NO_CALLBACKS, name: {}}, {}) for name in ITERATION_CALLBACKS},
}


def breakdown(model_cls: type[TinyMLP], iters: int, rounds: int, device: str) -> None:
    """The steady-state ratio of each configuration in ``BREAKDOWN``, measured in turn
    ``rounds`` times: the median and the range."""
    ratios: dict[str, list[float]] = {name: [] for name in BREAKDOWN}
    for _ in range(rounds):
        for name, (defaults, options) in BREAKDOWN.items():
            ratios[name].append(interleaved_fit(model_cls, iters, device, defaults, **options).steady)
    print(f"{'configuration':<28} {'ratio':>7} {'range':>13}")
    for name, values in ratios.items():
        print(f"{name:<28} {statistics.median(values):>7.3f} "
              f"{min(values):>6.3f}-{max(values):.3f}")


def rounds_of(model_cls: type[TinyMLP], iters: int, rounds: int, device: str, progress: bool,
              precision: str = "32", compiled: bool = False) -> Round:
    """The median of each figure over ``rounds`` interleaved fits, after one that warms up."""
    fits = [interleaved_fit(model_cls, iters, device, default_set(progress), precision, compiled)
            for _ in range(rounds + 1)][1:]
    return Round(*(statistics.median(values) for values in zip(*fits)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        default=["tiny MLP", "small CNN"])
    parser.add_argument("--progress", choices=("off", "on", "both"), default="both")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32")
    parser.add_argument("--compile", action="store_true",
                        help="compile both loops' models (Trainer(compile=True), "
                             "model.compile()); the whole run is then not given")
    parser.add_argument("--breakdown", action="store_true",
                        help="instead: the steady state of the default set and of its parts "
                             "(first model only)")
    args = parser.parse_args()
    if args.iters < 2 * CHUNK:
        parser.error(f"--iters must be at least {2 * CHUNK}: the loops alternate in chunks of "
                     f"{CHUNK} iterations after the first")
    torch.set_num_threads(1)
    if args.breakdown:
        print(f"steady state of the parts, {args.models[0]}, median of {args.rounds} runs each")
        breakdown(MODELS[args.models[0]], args.iters, args.rounds, args.device)
        return
    bars = {"off": [False], "on": [True], "both": [False, True]}[args.progress]
    sizes = ", ".join(f"{name} {MODELS[name].batch_size}" for name in args.models)
    print(f"device {args.device}, precision {args.precision}"
          f"{', compiled' if args.compile else ''}, batch size {sizes}, {args.iters} iterations, "
          "1 CPU thread")
    print(f"median of {args.rounds} fits, each with {CHUNK}-iteration chunks of the raw loop run "
          "between its own: the whole run, the steady chunks, and fit's time outside them "
          "spread over the run")
    if args.compile:
        print("compiled: the whole run includes both compilations, so only the steady state "
              "is given")
    print(f"{'model':<18} {'progress bar':<13} {'raw us/it':>10} {'Trainer us/it':>14} "
          f"{'whole':>7} {'steady':>7} {'overhead us/it':>15} {'fixed us/it':>12}")
    for name in args.models:
        for progress in bars:
            fit = rounds_of(MODELS[name], args.iters, args.rounds, args.device, progress,
                            args.precision, args.compile)
            whole = "-" if args.compile else f"{fit.whole:.3f}"
            print(f"{name:<18} {'on' if progress else 'off':<13} {fit.raw * 1e6:>10.1f} "
                  f"{fit.trainer * 1e6:>14.1f} {whole:>7} {fit.steady:>7.3f} "
                  f"{fit.overhead * 1e6:>15.1f} {fit.fixed * 1e6:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
