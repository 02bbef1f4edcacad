"""Per-iteration cost of the Trainer over a raw PyTorch loop, measured in one process.

The same model is trained by a hand-written loop and by ``Trainer(max_iters=N)`` with every
default callback on (the progress bar off, or on and writing to a non-terminal stream), in
alternating rounds; the overhead is the median of the per-round ratios Trainer / raw, so a
machine that slows down for a while slows both sides of a round. Models: a tiny MLP and a small
CNN, batch 32, one CPU thread. Run with ``python benchmarks/overhead.py [--rounds N]``.

A shared machine can change speed by half within a second, more than the overhead being
measured, and a round of 2,000 iterations lasts about a second. The second table therefore
interleaves the two loops inside one ``fit``: every ``CHUNK`` iterations a callback runs as many
raw iterations (their own model, optimizer and loader), so each pair of chunks is timed within
a few milliseconds of each other; the steady-state overhead is the median of the chunk ratios,
and the cost of ``fit`` outside its iterations (set-up, the FLOP count of the first iteration,
the last checkpoint) is given per iteration of the run beside it.

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
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trainer.callbacks import Callback

from trainer import BaseModel, Trainer

CHUNK = 20  # iterations per interleaved chunk: a few milliseconds


class TinyMLP(BaseModel):
    input_shape = (32,)

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x, y=None, mode="tensor"):
        logits = self.body(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits


class SmallCNN(TinyMLP):
    input_shape = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


MODELS = {"tiny MLP": TinyMLP, "small CNN": SmallCNN}


def make_loader(model_cls: type[TinyMLP], iters: int, batch_size: int = 32) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    n = iters * batch_size
    data = TensorDataset(torch.randn(n, *model_cls.input_shape, generator=g),
                         torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=batch_size, shuffle=True)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def raw_loop(model_cls: type[TinyMLP], loader: DataLoader, iters: int, device: str) -> float:
    torch.manual_seed(0)
    model = model_cls().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.process_time()
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.process_time() - start


def trainer_loop(model_cls: type[TinyMLP], loader: DataLoader, iters: int, device: str,
                 progress: bool = False) -> float:
    torch.manual_seed(0)
    model = model_cls()
    # stderr is a StringIO: the progress bar writes plain lines, as in a CI log or a job's file.
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory() as work_dir, quiet[0], quiet[1]:
        trainer = Trainer(max_iters=iters, work_dir=work_dir, accelerator=device,
                          optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                          default_callbacks=default_set(progress))
        start = time.process_time()
        trainer.fit(model, loader)
        synchronize(device)
        return time.process_time() - start


class Interleave(Callback):
    """After training iteration 0 (which counts FLOPs) and every ``CHUNK`` iterations after it:
    the CPU time of the trainer's chunk just done, then of ``CHUNK`` raw iterations."""

    priority = "LOWEST"

    def __init__(self, model_cls: type[TinyMLP], loader: DataLoader, device: str) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.model = model_cls().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.loader, self.device, self.batches = loader, device, iter(())
        self.trainer_times: list[float] = []
        self.raw_times: list[float] = []
        self.mark = 0.0

    def after_train_iter(self, trainer: Trainer, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if trainer.iter % CHUNK:
            return
        synchronize(self.device)
        start = time.process_time()
        if trainer.iter:
            self.trainer_times.append(start - self.mark)
        self.model.train()
        for _ in range(CHUNK):
            x, y = self.next_batch()
            loss = nn.functional.cross_entropy(self.model(x.to(self.device)), y.to(self.device))
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        synchronize(self.device)
        self.mark = time.process_time()
        self.raw_times.append(self.mark - start)

    def next_batch(self):
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)


def steady_state(model_cls: type[TinyMLP], iters: int, device: str,
                 default_callbacks: dict[str, Any], **options: Any) -> tuple[float, float, float]:
    """The median chunk ratio Trainer / raw, the overhead in seconds per iteration, and fit's
    time outside its steady iterations, per iteration of the run."""
    probe = Interleave(model_cls, make_loader(model_cls, iters), device)
    torch.manual_seed(0)
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory() as work_dir, quiet[0], quiet[1]:
        trainer = Trainer(max_iters=iters, work_dir=work_dir, accelerator=device,
                          callbacks=[probe],
                          optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                          default_callbacks=default_callbacks, **options)
        start = time.process_time()
        trainer.fit(model_cls(), make_loader(model_cls, iters))
        synchronize(device)
        total = time.process_time() - start
    ratio = statistics.median(t / r for t, r in zip(probe.trainer_times, probe.raw_times))
    per_iter = statistics.median(probe.trainer_times) / CHUNK
    uncounted = iters - 1 - CHUNK * len(probe.trainer_times)  # after the last whole chunk
    fixed = total - sum(probe.raw_times) - sum(probe.trainer_times) - uncounted * per_iter
    return ratio, per_iter - per_iter / ratio, fixed / iters


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
            ratios[name].append(steady_state(model_cls, iters, device, defaults, **options)[0])
    print(f"{'configuration':<28} {'ratio':>7} {'range':>13}")
    for name, values in ratios.items():
        print(f"{name:<28} {statistics.median(values):>7.3f} "
              f"{min(values):>6.3f}-{max(values):.3f}")


def measure(model_cls: type[TinyMLP], iters: int, rounds: int, device: str,
            progress: bool) -> tuple[float, float, float]:
    """Median raw and Trainer seconds per iteration, and the median of the paired ratios."""
    loader = make_loader(model_cls, iters)
    raw_loop(model_cls, loader, iters, device)  # warm-up
    trainer_loop(model_cls, loader, iters, device, progress)
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(raw_loop(model_cls, loader, iters, device))
        ours.append(trainer_loop(model_cls, loader, iters, device, progress))
    ratio = statistics.median(o / r for o, r in zip(ours, raw))
    return statistics.median(raw) / iters, statistics.median(ours) / iters, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--progress", choices=("off", "on", "both"), default="both")
    parser.add_argument("--breakdown", action="store_true",
                        help="instead: the steady state of the default set and of its parts "
                             "(first model only)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.breakdown:
        print(f"steady state of the parts, {args.models[0]}, median of {args.rounds} runs each")
        breakdown(MODELS[args.models[0]], args.iters, args.rounds, args.device)
        return
    bars = {"off": [False], "on": [True], "both": [False, True]}[args.progress]
    print(f"device {args.device}, batch 32, {args.iters} iterations, 1 CPU thread, "
          f"median of {args.rounds} paired rounds")
    print(f"{'model':<10} {'progress bar':<13} {'raw us/it':>10} {'Trainer us/it':>14} "
          f"{'ratio':>7}")
    for name in args.models:
        for progress in bars:
            raw, ours, ratio = measure(MODELS[name], args.iters, args.rounds, args.device,
                                       progress)
            print(f"{name:<10} {'on' if progress else 'off':<13} {raw * 1e6:>10.1f} "
                  f"{ours * 1e6:>14.1f} {ratio:>7.3f}", flush=True)
    print(f"steady state, interleaved {CHUNK}-iteration chunks inside one fit (median ratio), "
          "and fit's fixed cost spread over the run")
    print(f"{'model':<10} {'progress bar':<13} {'ratio':>7} {'overhead us/it':>15} "
          f"{'fixed us/it':>12}")
    for name in args.models:
        for progress in bars:
            ratio, overhead, fixed = steady_state(MODELS[name], args.iters, args.device,
                                                  default_set(progress))
            print(f"{name:<10} {'on' if progress else 'off':<13} {ratio:>7.3f} "
                  f"{overhead * 1e6:>15.1f} {fixed * 1e6:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
