"""Every epoch the ranks together see each sample once, in a new order; resuming changes nothing.

The matrix {epoch-based, iteration-based} x {1 process, ``devices=2``, ``torchrun``} x {straight,
resumed mid-epoch} runs the scenarios of ``order_scenarios.py`` over a plain
``DataLoader(shuffle=True)`` whose samples carry their index, and checks the recorded indices.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.trainer.dist import order_scenarios
from tests.trainer.dist.launchers import torchrun
from tests.trainer.dist.order_scenarios import CUT, SAMPLES, IndexedSet
from trainer.config.data import build_dataloader

KINDS = ("epoch", "iter")


def records(out: Path, name: str, world_size: int) -> list[list]:
    """Per rank, the ``[epoch, iter, indices]`` of every batch it trained on."""
    return [json.loads(Path(f"{out / name}-rank{r}.json").read_text()) for r in range(world_size)]


def orders_by_epoch(per_rank: list[list]) -> dict[int, list[list[int]]]:
    """Epoch -> each rank's sample order in it."""
    epochs: dict[int, list[list[int]]] = {}
    for rank, batches in enumerate(per_rank):
        for epoch, _, indices in batches:
            epochs.setdefault(epoch, [[] for _ in per_rank])[rank].extend(indices)
    return epochs


def check_each_epoch_sees_every_sample_once_in_a_new_order(per_rank: list[list]) -> None:
    epochs = orders_by_epoch(per_rank)
    assert sorted(epochs) == [0, 1, 2]
    for epoch, orders in epochs.items():
        seen = sorted(i for order in orders for i in order)
        if epoch < 2 or len(seen) == SAMPLES:  # the iteration-based run ends inside epoch 2
            assert seen == list(range(SAMPLES)), f"epoch {epoch}: {orders}"
        else:
            assert len(set(seen)) == len(seen) > 0, f"epoch {epoch} repeats samples: {orders}"
    for rank in range(len(per_rank)):
        for a in epochs:
            for b in range(a + 1, len(epochs)):
                first, second = epochs[a][rank], epochs[b][rank]
                common = min(len(first), len(second))
                assert first[:common] != second[:common], \
                    f"rank {rank} sees the same order in epochs {a} and {b}: {first}"


def check_resumed_equals_straight(out: Path, kind: str, world_size: int) -> None:
    """The first run's batches before the cut plus the resumed run's are the straight run's."""
    straight = records(out, f"{kind}-straight", world_size)
    first = records(out, f"{kind}-first", world_size)
    resumed = records(out, f"{kind}-resumed", world_size)
    cut = CUT // world_size
    assert resumed[0][0][1] == cut  # the resumed run really started mid-run
    for rank in range(world_size):
        joined = [b for b in first[rank] if b[1] < cut] + resumed[rank]
        assert joined == straight[rank], f"rank {rank}"
    assert_same_weights(weights(out, f"{kind}-straight"), weights(out, f"{kind}-resumed"))


def weights(out: Path, name: str, rank: int = 0) -> dict[str, torch.Tensor]:
    return torch.load(out / f"{name}-rank{rank}.pt")


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def check_matrix(out: Path, world_size: int) -> None:
    for kind in KINDS:
        check_each_epoch_sees_every_sample_once_in_a_new_order(
            records(out, f"{kind}-straight", world_size))
        check_resumed_equals_straight(out, kind, world_size)


@pytest.mark.parametrize("kind", KINDS)
def test_one_process(tmp_path, kind):
    order_scenarios.run(tmp_path, kind, devices=1)
    check_each_epoch_sees_every_sample_once_in_a_new_order(
        records(tmp_path, f"{kind}-straight", 1))
    check_resumed_equals_straight(tmp_path, kind, 1)


def test_devices_2(tmp_path):
    for kind in KINDS:
        order_scenarios.run(tmp_path, kind, devices=2)
    check_matrix(tmp_path, 2)


@pytest.mark.slow
def test_torchrun(tmp_path):
    proc = torchrun(order_scenarios.__file__, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_matrix(tmp_path, 2)
    for kind in KINDS:  # every rank ends with the same weights
        assert_same_weights(weights(tmp_path, f"{kind}-straight", 0),
                            weights(tmp_path, f"{kind}-straight", 1))
    # Only rank zero prints: one last line per run (straight, first, resumed) of 5 iterations.
    assert proc.stdout.count("Iter(train) [5/5]") == 3, proc.stdout[-2000:]
    assert "broadcast_buffers" not in proc.stderr  # no deprecation warning from DDP


def test_devices_2_with_a_seeded_sampler_from_a_config(tmp_path):
    """The config's ``DefaultSampler`` is built before the workers start; they still split it."""
    loader = build_dataloader(dict(dataset=IndexedSet(), batch_size=order_scenarios.BATCH,
                                   sampler=dict(type="DefaultSampler", shuffle=True, seed=42)),
                              "train_dataloader")
    order_scenarios.train(tmp_path, "config", "epoch", 2, 2, loader=loader)
    check_each_epoch_sees_every_sample_once_in_a_new_order(records(tmp_path, "config", 2))
