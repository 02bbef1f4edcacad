"""Per-iteration cost of the Trainer over a raw PyTorch loop, measured in one process.

The same model is trained by a hand-written loop and by ``Trainer(max_iters=N)`` with every
default callback on (the progress bar off, or on and writing to a non-terminal stream), in
alternating rounds; the overhead is the median of the per-round ratios Trainer / raw, so a
machine that slows down for a while slows both sides of a round. Models: a tiny MLP and a small
CNN, batch 32, one CPU thread. Run with ``python benchmarks/overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer import BaseModel, Trainer


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
                          default_callbacks={} if progress else {"progress": None})
        start = time.process_time()
        trainer.fit(model, loader)
        synchronize(device)
        return time.process_time() - start


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
    args = parser.parse_args()
    torch.set_num_threads(1)
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


if __name__ == "__main__":
    main()
