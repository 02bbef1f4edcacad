"""Throughput from the timer callback, read back from scalars.jsonl."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from trainer.callbacks import IterTimerCallback

from tests.conftest import ToyNet, toy_loader
from trainer import BaseModel, Trainer
from trainer.throughput import batch_size

QUIET = {"progress": None, "checkpoint": None}
RATES = ("iters_per_s", "samples_per_s", "flops")


class Linear(BaseModel):
    """One linear layer (8 -> 3): its FLOPs can be counted by hand. Says how many tokens a batch
    holds (each sample counts as 5 tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x, y=None, mode="tensor"):
        logits = self.fc(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits

    def count_tokens(self, data) -> int:
        return 5 * len(data[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def train_records(trainer: Trainer) -> list[dict]:
    with open(f"{trainer.log_dir}/scalars.jsonl") as f:
        return [r for r in map(json.loads, f) if r["mode"] == "train"]


def test_throughput_and_flops_of_a_linear_model(work_dir):
    # window_size=interval: the logged time is the mean over the same iterations as the rates.
    trainer = Trainer(max_iters=40, work_dir=work_dir, log_interval=10, default_callbacks={
        **QUIET, "timer": {"peak_flops": 1e9}, "logger": {"window_size": 10}})
    trainer.fit(Linear(), toy_loader(n=320, batch_size=32))
    records = train_records(trainer)
    assert [r["iter"] for r in records] == [10, 20, 30, 40]
    assert not any(k in records[0] for k in RATES)  # the first interval holds the warm-up
    # Forward 2*batch*in*out, the weight gradient as much again; the input needs no gradient,
    # and the bias, loss and SGD update are element-wise (not counted).
    hand_count = 2 * (2 * 32 * 8 * 3)
    for r in records[1:]:
        assert r["flops"] == hand_count
        assert r["samples_per_s"] == pytest.approx(32 * r["iters_per_s"])
        assert r["tokens_per_s"] == pytest.approx(5 * 32 * r["iters_per_s"])
        assert r["mfu"] == pytest.approx(hand_count * r["iters_per_s"] / 1e9)
        assert r["iters_per_s"] == pytest.approx(1 / r["time"], rel=0.05)
        # Thousands of samples/s on an idle core; the bound only catches a wrong unit (per ms).
        assert r["samples_per_s"] > 100


def test_flops_of_the_mlp_and_epochs_with_validation(work_dir):
    from tests.conftest import accuracy

    trainer = Trainer(max_epochs=3, work_dir=work_dir, log_interval=3, val_evaluator=accuracy(),
                      default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=96, batch_size=16), toy_loader(n=32))  # 6 per epoch
    records = train_records(trainer)
    assert [r["iter"] for r in records] == [3, 6, 9, 12, 15, 18]
    # Two linear layers (8->32, 32->3), batch 16: forward 2*16*(8*32 + 32*3), the weight
    # gradients as much, and the second layer's input gradient 2*16*32*3.
    assert {r.get("flops") for r in records[1:]} == {2 * 2 * 16 * (8 * 32 + 32 * 3)
                                                     + 2 * 16 * 32 * 3}
    assert all(r["samples_per_s"] == pytest.approx(16 * r["iters_per_s"]) for r in records[1:])
    assert "mfu" not in records[-1]  # no peak known on CPU and none given


def samples_per_iteration(records: list[dict]) -> list[float]:
    return [round(r["samples_per_s"] / r["iters_per_s"], 6) for r in records if "iters_per_s" in r]


@pytest.mark.parametrize("by_epoch", [True, False], ids=["epochs", "iters"])
@pytest.mark.parametrize(("drop_last", "expected"), [
    # 300 samples in batches of 32: nine full batches and one of 12 an epoch. Figures every 5
    # iterations, from the second interval on: batches 6-10 of an epoch hold 4 * 32 + 12.
    (False, [28.0, 32.0, 28.0, 32.0, 28.0]),
    (True, [32.0] * 4),  # nine batches of 32 an epoch
])
def test_samples_per_s_counts_an_epochs_short_last_batch(work_dir, by_epoch, drop_last, expected):
    length = {"max_epochs": 3} if by_epoch else {"max_iters": 25 if drop_last else 30}
    trainer = Trainer(**length, work_dir=work_dir, log_interval=5, default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(n=300, batch_size=32, shuffle=True, drop_last=drop_last))
    assert samples_per_iteration(train_records(trainer)) == expected


def test_samples_per_s_after_a_mid_epoch_resume(work_dir):
    def trainer(max_iters, **kwargs):
        return Trainer(max_iters=max_iters, work_dir=work_dir, log_interval=5, seed=0,
                       default_callbacks=QUIET | {"checkpoint": {}}, **kwargs)

    loader = toy_loader(n=300, batch_size=32, shuffle=True)  # batches of 32, the tenth of 12
    trainer(12).fit(ToyNet(), loader)  # stops inside the second epoch
    resumed = trainer(30, resume=True)
    resumed.fit(ToyNet(), loader)
    records = [r for r in train_records(resumed) if r["iter"] > 12]
    # 15 sets the mark; 16-20 hold the second epoch's short last batch, as do 26-30.
    assert samples_per_iteration(records) == [28.0, 32.0, 28.0]


def test_samples_per_s_of_an_iterable_uses_the_logging_batch(work_dir):
    """Batch sizes an iterable yields are not known in advance: the logging iteration's one."""

    class Batches(torch.utils.data.IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for size in (8, 8, 8, 4) * 3:
                yield torch.randn(size, 8, generator=g), torch.randint(0, 3, (size,), generator=g)

    trainer = Trainer(max_iters=12, work_dir=work_dir, log_interval=4, default_callbacks=QUIET)
    trainer.fit(ToyNet(), torch.utils.data.DataLoader(Batches(), batch_size=None))
    assert samples_per_iteration(train_records(trainer)) == [4.0, 4.0]


def test_resumed_run_skips_its_first_interval_again(work_dir):
    def trainer(max_iters, **kwargs):
        return Trainer(max_iters=max_iters, work_dir=work_dir, log_interval=4, seed=0,
                       default_callbacks={"progress": None}, **kwargs)

    trainer(8).fit(ToyNet(), toy_loader())
    resumed = trainer(20, resume=True)
    resumed.fit(ToyNet(), toy_loader())
    records = [r for r in train_records(resumed) if r["iter"] > 8]  # same log folder or not
    assert [r["iter"] for r in records] == [12, 16, 20]
    assert "iters_per_s" not in records[0] and all("iters_per_s" in r for r in records[1:])


def test_batch_size_is_read_from_the_first_tensor():
    x = torch.zeros(7, 3)
    assert batch_size(x) == 7
    assert batch_size((x, torch.zeros(7))) == 7
    assert batch_size({"meta": "a", "inputs": {"ids": torch.zeros(4, 9)}}) == 4
    assert batch_size(["no tensors"]) is None and batch_size(torch.tensor(1.0)) is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"interval": 0}, "interval must be a positive int or None"),
    ({"peak_flops": -1.0}, "peak_flops must be a positive number"),
    ({"peak_flops": "312T"}, "peak_flops must be a positive number"),
])
def test_bad_arguments_are_refused_when_the_trainer_is_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(max_iters=2, default_callbacks={"timer": kwargs})


def test_no_flops_counting_when_switched_off(work_dir):
    timer = IterTimerCallback(count_flops=False)
    trainer = Trainer(max_iters=9, work_dir=work_dir, log_interval=3,
                      default_callbacks={**QUIET, "timer": timer})
    trainer.fit(ToyNet(), toy_loader())
    assert timer.flops is None
    assert all("flops" not in r for r in train_records(trainer))


class FailsOnce(Linear):
    def train_step(self, data, optim_wrapper):
        raise RuntimeError("broken first step")


def test_a_failed_first_iteration_does_not_leave_the_flop_counter_on(work_dir):
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    with pytest.raises(RuntimeError, match="broken first step"):
        Trainer(max_iters=3, work_dir=work_dir, default_callbacks=QUIET).fit(
            FailsOnce(), toy_loader())
    trainer = Trainer(max_iters=4, work_dir=f"{work_dir}2", log_interval=2,
                      default_callbacks=QUIET)
    trainer.fit(Linear(), toy_loader(batch_size=8))
    assert train_records(trainer)[-1]["flops"] == 2 * (2 * 8 * 8 * 3)  # counted afresh
    assert _get_current_dispatch_mode_stack() == []  # nothing left on after either run


def test_flop_count_equals_torchs_flop_counter_on_convolutions_and_attention():
    """The counter sums torch's own formulas without tracking modules; composite operations
    (a transformer layer's attention) are decomposed as ``FlopCounterMode`` decomposes them."""
    from torch.utils.flop_counter import FlopCounterMode

    from trainer.throughput import FlopCount

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    steps = [lambda: conv(torch.randn(2, 3, 6, 6)).sum().backward(),
             lambda: layer(torch.randn(2, 5, 16)).sum().backward()]
    for step in steps:
        with FlopCounterMode(display=False) as reference:
            step()
        counter = FlopCount()
        step()
        assert counter.close() == reference.get_total_flops() > 0
