"""Save and load time of a ~100 MB checkpoint: the trainer's fsspec I/O against raw torch.

The trainer writes to a temporary name and renames (atomic) and reads with
``weights_only=True``; raw ``torch.save``/``torch.load(weights_only=True)`` use the path
directly. Both run alternately in one process; the best round of each is compared.
Run with ``python benchmarks/checkpoint_io.py [--mb 100] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from trainer.checkpoint.io import load_checkpoint, save_checkpoint


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n_tensors = 50
    numel = args.mb * 2**20 // 4 // n_tensors
    state = {"state_dict": {f"layer{i}.weight": torch.randn(numel) for i in range(n_tensors)},
             "meta": {"epoch": 1, "iter": 100}}
    results: dict[str, list[float]] = {"raw save": [], "trainer save": [],
                                       "raw load": [], "trainer load": []}
    with tempfile.TemporaryDirectory() as tmp:
        raw_path, our_path = os.path.join(tmp, "raw.pth"), os.path.join(tmp, "ours.pth")
        for _ in range(args.rounds):
            results["raw save"].append(timed(lambda: torch.save(state, raw_path)))
            results["trainer save"].append(timed(lambda: save_checkpoint(state, our_path)))
            results["raw load"].append(timed(lambda: torch.load(raw_path, weights_only=True)))
            results["trainer load"].append(timed(lambda: load_checkpoint(our_path)))
    best = {k: min(v) for k, v in results.items()}
    for key, seconds in best.items():
        print(f"{key:13s}: {seconds * 1e3:8.1f} ms (best of {args.rounds}, {args.mb} MB)")
    for op in ("save", "load"):
        print(f"{op} ratio   : {best[f'trainer {op}'] / best[f'raw {op}']:8.3f} (trainer / raw)")


if __name__ == "__main__":
    main()
