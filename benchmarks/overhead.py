"""Per-iteration cost of the Trainer over a raw PyTorch loop, measured in one process.

The same tiny MLP (batch 32, 2,000 iterations, one thread) is trained by a hand-written loop and
by ``Trainer(max_iters=2000)`` with the default callbacks (progress bar off), alternating, and the
best round of each is compared. Run with ``python benchmarks/overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer import BaseModel, Trainer


class TinyMLP(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x, y=None, mode="tensor"):
        logits = self.body(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits


def make_loader(iters: int, batch_size: int = 32) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    n = iters * batch_size
    data = TensorDataset(torch.randn(n, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=batch_size, shuffle=True)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def raw_loop(loader: DataLoader, device: str = "cpu") -> float:
    torch.manual_seed(0)
    model = TinyMLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start


def trainer_loop(loader: DataLoader, iters: int, device: str = "cpu") -> float:
    torch.manual_seed(0)
    model = TinyMLP()
    with tempfile.TemporaryDirectory() as work_dir, contextlib.redirect_stdout(io.StringIO()):
        trainer = Trainer(max_iters=iters, work_dir=work_dir, accelerator=device,
                          optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
                          default_callbacks={"progress": None})
        start = time.perf_counter()
        trainer.fit(model, loader)
        synchronize(device)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loader = make_loader(args.iters)
    raw_loop(loader, args.device), trainer_loop(loader, args.iters, args.device)  # warm-up
    raw, ours = [], []
    for _ in range(args.rounds):
        raw.append(raw_loop(loader, args.device))
        ours.append(trainer_loop(loader, args.iters, args.device))
    best_raw, best_ours = min(raw), min(ours)
    per_iter = 1e6 / args.iters
    print(f"device       : {args.device}, batch 32, {args.iters} iterations, 1 CPU thread")
    print(f"raw loop     : {best_raw * per_iter:8.1f} us/iter (best of {args.rounds})")
    print(f"Trainer      : {best_ours * per_iter:8.1f} us/iter (best of {args.rounds})")
    print(f"overhead     : {(best_ours - best_raw) * per_iter:8.1f} us/iter")
    print(f"ratio        : {best_ours / best_raw:8.3f} (Trainer / raw)")


if __name__ == "__main__":
    main()
