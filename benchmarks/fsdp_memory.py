"""Per-rank training state of a ~50M-parameter transformer: 1 process, DDP x2 and FSDP x2.

Each run trains a few AdamW steps through ``Trainer``. Right after every optimizer step, when
parameters, gradients and optimizer state all exist, a callback adds up the bytes of this
rank's own share of each (the local shard of a DTensor under FSDP); the table shows the peak
over steps and the largest rank. FSDP x2 must hold at most 0.55x of DDP's per-rank state (the
script exits non-zero otherwise). On a CUDA machine the same runs go again in bf16 on the GPUs
and report ``torch.cuda.max_memory_allocated`` as well, which adds activations and FSDP's
gathered parameters. Run with ``python benchmarks/fsdp_memory.py [--layers 14] [--steps 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trainer.callbacks import Callback

from trainer import BaseModel, Trainer
from trainer.dist import all_gather_object

MIB = 2**20


class TinyGPT(BaseModel):
    """Token embedding, ``layers`` pre-norm encoder blocks with a causal mask, a vocab head."""

    def __init__(self, layers: int = 14, width: int = 512, vocab: int = 8192) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, nhead=8, dim_feedforward=4 * width, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor, mode: str = "tensor") -> Any:
        x = self.embed(tokens[:, :-1])
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        logits = self.head(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits.flatten(0, 1),
                                                        tokens[:, 1:].flatten())}
        return logits


def local_bytes(tensors: Any) -> int:
    """Bytes this rank holds for ``tensors`` (a DTensor counts its local shard only)."""
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor):
            t = t.to_local() if hasattr(t, "to_local") else t
            total += t.numel() * t.element_size()
    return total


class StateBytes(Callback):
    """Peak parameter, gradient and optimizer-state bytes of this rank, written by rank zero."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out, self.peak = out, {"params": 0, "grads": 0, "optimizer": 0}

    def before_train(self, trainer: Any) -> None:
        optimizer = trainer.optim_wrapper.optimizer
        optimizer.register_step_post_hook(lambda opt, args, kwargs: self.measure(trainer))
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)

    def measure(self, trainer: Any) -> None:
        params = list(trainer.model.parameters())
        optimizer = trainer.optim_wrapper.optimizer
        now = {"params": local_bytes(params),
               "grads": local_bytes(p.grad for p in params),
               "optimizer": local_bytes(v for s in optimizer.state.values() for v in s.values())}
        self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def after_train(self, trainer: Any) -> None:
        cuda = (torch.cuda.max_memory_allocated(trainer.device)
                if trainer.device.type == "cuda" else None)
        ranks = all_gather_object({**self.peak, "cuda_peak": cuda})
        if trainer.rank == 0:
            worst = {k: max((r[k] or 0) for r in ranks) for k in ranks[0]}
            with open(self.out, "w") as f:
                json.dump(worst, f)


def measure(name: str, devices: int, strategy: Any, args: argparse.Namespace,
            accelerator: str, tmp: str) -> dict[str, int]:
    out = os.path.join(tmp, f"{name}-{accelerator}.json")
    tokens = torch.randint(0, 8192, (8 * devices * args.steps, args.seq + 1),
                           generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(tokens), batch_size=args.batch)
    trainer = Trainer(max_iters=args.steps, devices=devices, strategy=strategy,
                      accelerator=accelerator, seed=0, work_dir=os.path.join(tmp, name),
                      precision="bf16-mixed" if accelerator == "cuda" else "32",
                      optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-4)),
                      callbacks=[StateBytes(out)],
                      default_callbacks={"progress": None, "logger": None, "checkpoint": None})
    trainer.fit(TinyGPT(args.layers), loader)
    with open(out) as f:
        return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=14)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=64)
    args = parser.parse_args()
    n_params = sum(p.numel() for p in TinyGPT(args.layers).parameters())
    print(f"TinyGPT with {args.layers} layers: {n_params / 1e6:.1f}M parameters, AdamW")
    runs = {"1 process": (1, "auto"), "DDP x2": (2, "ddp"),
            "FSDP x2": (2, dict(type="fsdp", wrap=[nn.TransformerEncoderLayer]))}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for accelerator in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            # One GPU per process: with a single GPU only the one-process row runs on CUDA.
            slots = torch.cuda.device_count() if accelerator == "cuda" else 2
            rows = {name: measure(name.split()[0], devices, strategy, args, accelerator, tmp)
                    for name, (devices, strategy) in runs.items() if devices <= slots}
            cuda = accelerator == "cuda"
            print(f"\n{accelerator} ({'bf16-mixed' if cuda else 'fp32'}), MiB per rank")
            print(f"{'run':10s} {'params':>8s} {'grads':>8s} {'optim':>8s} {'total':>8s}"
                  + (f" {'cuda peak':>10s}" if cuda else ""))
            totals = {}
            for name, row in rows.items():
                totals[name] = row["params"] + row["grads"] + row["optimizer"]
                print(f"{name:10s} {row['params'] / MIB:8.1f} {row['grads'] / MIB:8.1f} "
                      f"{row['optimizer'] / MIB:8.1f} {totals[name] / MIB:8.1f}"
                      + (f" {row['cuda_peak'] / MIB:10.1f}" if cuda else ""))
            if "FSDP x2" in totals:
                ratio = totals["FSDP x2"] / totals["DDP x2"]
                print(f"FSDP x2 / DDP x2 per-rank state: {ratio:.3f} (must be <= 0.55)")
                ok = ok and ratio <= 0.55
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
