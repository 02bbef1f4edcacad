"""DDP for real: two CPU processes over gloo, started by the trainer and by torchrun."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from trainer.callbacks import Callback

from tests.conftest import ToyNet, accuracy, toy_dataset, toy_loader
from tests.trainer.dist.launchers import ENV, REPO, torchrun
from trainer import Trainer, dist
from trainer.dist.ddp import wrap_model

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")
FAILING_RUN = Path(__file__).with_name("failing_run.py")
QUIET = {"progress": None}


def ddp_trainer(work_dir, devices=2, **kwargs):
    kwargs.setdefault("default_callbacks", QUIET)
    return Trainer(work_dir=str(work_dir), devices=devices, strategy="ddp", seed=0,
                   optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), **kwargs)


def test_devices_2_matches_one_process_with_the_doubled_batch(tmp_path):
    torch.manual_seed(0)
    model = ToyNet()
    reference = ToyNet()
    reference.load_state_dict(model.state_dict())
    ddp = ddp_trainer(tmp_path / "ddp", max_iters=6)
    ddp.fit(model, toy_loader(n=96, batch_size=8))  # 2 ranks x 8 = 16 samples per step
    single = Trainer(max_iters=6, work_dir=str(tmp_path / "one"), seed=0,
                     optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                     default_callbacks=QUIET)
    single.fit(reference, toy_loader(n=96, batch_size=16))
    assert ddp.iter == 6 and ddp.epoch == 1  # 48 samples per rank = 6 batches of 8
    assert (ddp.world_size, ddp.rank) == (2, 0)  # the caller stands in for rank zero
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not torch.equal(model.body[0].weight, ToyNet().body[0].weight)


def test_validation_metrics_over_two_processes_equal_one_process(tmp_path):
    model = ToyNet()
    val = toy_loader(n=13, batch_size=4, seed=5)  # odd size: a padded sampler would repeat one
    trainer = ddp_trainer(tmp_path / "run", max_iters=4, val_interval=4,
                          val_evaluator={"acc": accuracy()},
                          default_callbacks={"progress": None, "logger": None})
    trainer.fit(model, toy_loader(), val)
    ddp_acc = trainer.message_hub.get_scalar("val/acc").current()
    single = Trainer(max_iters=1, work_dir=str(tmp_path / "one"), val_evaluator={"acc": accuracy()},
                     default_callbacks=QUIET)
    assert single.validate(model, val)["acc"] == ddp_acc
    assert round(ddp_acc * 13) == ddp_acc * 13  # a count out of 13, not of 14


class PortedNoteHook(Callback):
    """An MMEngine hook ported as is: its writer is decorated with ``master_only``."""

    @dist.master_only
    def after_train(self, trainer):
        (Path(trainer.work_dir) / f"note_rank{trainer.rank}.txt").write_text(str(trainer.iter))


def test_only_rank_zero_writes_files(tmp_path):
    work_dir = tmp_path / "run"
    trainer = ddp_trainer(work_dir, max_iters=8, log_interval=2, callbacks=[PortedNoteHook()],
                          default_callbacks={"progress": None, "checkpoint": {
                              "interval": 4, "by_epoch": False}})
    trainer.fit(ToyNet(), toy_loader())
    (log_dir,) = [p for p in work_dir.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (log_dir / "scalars.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [2, 4, 6, 8]  # one line per log step, not one per rank
    assert sorted(p.name for p in work_dir.iterdir() if p.is_file()) == [
        "iter_4.pth", "iter_8.pth", "last_checkpoint", "note_rank0.txt"]


@pytest.mark.parametrize("launch", ["devices", "torchrun"])
def test_exception_on_one_rank_ends_every_rank_with_its_message(tmp_path, launch):
    """Rank 1 raises while rank 0 would train 100,000 iterations: the job ends with an error.

    The process group's timeout is 30 s; the limit adds room for starting the interpreters on a
    busy machine (a minute at a load of 20 on 2 cores).
    """
    args = [str(FAILING_RUN), str(tmp_path / "run")]
    if launch == "torchrun":
        proc = torchrun(*args, "1", timeout=150)
    else:
        proc = subprocess.run([sys.executable, *args, "2"], cwd=REPO, capture_output=True,
                              text=True, timeout=150, env=ENV)
    assert proc.returncode != 0
    assert "rank 1 gave up at iteration 3" in proc.stderr


def test_resume_under_ddp_is_bit_identical(tmp_path):
    def run(name, resume_from=None, interval=-1):
        torch.manual_seed(1)
        model = ToyNet(dropout=0.3)
        trainer = ddp_trainer(tmp_path / name, max_iters=9, resume=resume_from is not None,
                              load_from=resume_from,
                              default_callbacks={"progress": None, "logger": None, "checkpoint": {
                                  "interval": interval, "by_epoch": False}})
        trainer.fit(model, toy_loader(n=40, batch_size=4, shuffle=True))
        return model

    straight = run("straight")
    run("first", interval=4)  # 5 batches per rank and epoch: iteration 4 is mid-epoch
    resumed = run("resumed", resume_from=str(tmp_path / "first" / "iter_4.pth"))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_bf16_mixed_on_cpu_tracks_fp32(tmp_path):
    def final_loss(precision):
        torch.manual_seed(0)
        model = ToyNet()
        trainer = Trainer(max_iters=60, work_dir=str(tmp_path / precision), seed=0,
                          precision=precision, default_callbacks={"progress": None,
                                                                  "logger": None})
        trainer.fit(model, toy_loader(shuffle=True))
        x, y = toy_dataset(96).tensors
        return torch.nn.functional.cross_entropy(model(x), y).item()

    fp32, bf16 = final_loss("32"), final_loss("bf16-mixed")
    assert fp32 < 0.2 and abs(bf16 - fp32) < 0.05  # bf16 keeps ~3 significant digits


def test_bad_strategy_options():
    with pytest.raises(ValueError, match="unknown options \\['find_unused'\\]"):
        Trainer(max_iters=1, strategy=dict(type="ddp", find_unused=True))
    with pytest.raises(ValueError, match="auto_scale_lr must be dict\\(base_batch_size=N"):
        Trainer(max_iters=1, auto_scale_lr=dict(enable=True))


def test_auto_scale_lr_uses_the_total_batch_size(tmp_path):
    trainer = ddp_trainer(tmp_path / "run", max_iters=1, auto_scale_lr=dict(base_batch_size=64),
                          default_callbacks={"progress": None, "logger": None})
    trainer.fit(ToyNet(), DataLoader(toy_dataset(), batch_size=8))
    lr = trainer.message_hub.get_scalar("train/lr").current()
    assert lr == pytest.approx(0.1 * 16 / 64)


class DrawAtStart(Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def before_train(self, trainer):
        torch.save(torch.rand(3), f"{self.path}-rank{trainer.rank}.pt")


@pytest.mark.parametrize("diff_rank_seed", [False, True])
def test_diff_rank_seed_gives_each_rank_its_own_stream(tmp_path, diff_rank_seed):
    path = str(tmp_path / "draw")
    trainer = Trainer(max_iters=1, devices=2, seed=3, diff_rank_seed=diff_rank_seed,
                      work_dir=str(tmp_path / "run"), callbacks=[DrawAtStart(path)],
                      default_callbacks={"progress": None, "logger": None})
    trainer.fit(ToyNet(), toy_loader())
    rank0, rank1 = torch.load(f"{path}-rank0.pt"), torch.load(f"{path}-rank1.pt")
    assert torch.equal(rank0, rank1) != diff_rank_seed


class SaveWindowLoss(Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def after_train(self, trainer):
        loss = trainer.message_hub.get_scalar("train/loss").mean(10)
        torch.save(torch.tensor(loss), f"{self.path}-rank{trainer.rank}.pt")


def test_logged_loss_is_the_mean_over_ranks(tmp_path):
    path, work_dir = str(tmp_path / "loss"), tmp_path / "run"
    trainer = ddp_trainer(work_dir, max_iters=4, log_interval=4, callbacks=[SaveWindowLoss(path)],
                          default_callbacks={"progress": None, "checkpoint": None})
    trainer.fit(ToyNet(), toy_loader(shuffle=True))
    per_rank = [torch.load(f"{path}-rank{r}.pt").item() for r in (0, 1)]
    (log_dir,) = [p for p in work_dir.iterdir() if p.is_dir()]
    (record,) = [json.loads(line) for line in (log_dir / "scalars.jsonl").read_text().splitlines()]
    assert per_rank[0] != per_rank[1]
    assert record["loss"] == pytest.approx(sum(per_rank) / 2, rel=1e-6)


class TwoHeads(ToyNet):
    """A model with its own train_step and two optimizers, as a GAN has."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 1)

    def train_step(self, data, optim_wrapper):
        x, y = data
        loss_body = torch.nn.functional.cross_entropy(self.body(x), y)
        optim_wrapper["body"].update_params(loss_body)
        loss_head = self.head(self.body(x).detach()).pow(2).mean()
        optim_wrapper["head"].update_params(loss_head)
        return {"loss_body": loss_body.detach(), "loss_head": loss_head.detach()}


def test_custom_train_step_with_two_optimizers_under_ddp(tmp_path):
    optim = dict(body=dict(optimizer=dict(type="SGD", lr=0.1)),
                 head=dict(optimizer=dict(type="SGD", lr=0.1)))
    torch.manual_seed(0)
    model, reference = TwoHeads(), TwoHeads()
    reference.load_state_dict(model.state_dict())
    ddp = Trainer(max_iters=6, devices=2, strategy="ddp", seed=0, work_dir=str(tmp_path / "ddp"),
                  optim_wrapper=optim, default_callbacks={"progress": None, "logger": None})
    ddp.fit(model, toy_loader(n=96, batch_size=8))
    Trainer(max_iters=6, seed=0, work_dir=str(tmp_path / "one"), optim_wrapper=optim,
            default_callbacks={"progress": None, "logger": None}).fit(
        reference, toy_loader(n=96, batch_size=16))
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    saved = torch.load(str(tmp_path / "ddp" / "iter_6.pth"), weights_only=True)["state_dict"]
    assert saved.keys() == model.state_dict().keys()  # no "module." in the checkpoint


@pytest.mark.parametrize("broadcast_buffers", [True, False])
@pytest.mark.parametrize("model_cls", [ToyNet, TwoHeads])
def test_ddp_wrapping_uses_the_current_buffer_sync_argument(one_rank_group, broadcast_buffers,
                                                            model_cls):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch 2.13 warns that broadcast_buffers is deprecated
        wrapped = wrap_model(model_cls(), torch.device("cpu"), broadcast_buffers=broadcast_buffers)
    ddps = [wrapped] if model_cls is ToyNet else list(wrapped.wrappers.values())
    assert ddps and all(d.broadcast_buffers is broadcast_buffers for d in ddps)


def test_progress_bars_count_the_batches_of_rank_zero(tmp_path, capfd):
    """Each of 2 ranks runs 4 of the 8 training and 2 of the 4 validation batches."""
    trainer = ddp_trainer(tmp_path / "run", max_epochs=1, val_evaluator={"acc": accuracy()},
                          default_callbacks={"logger": None, "checkpoint": None,
                                             "progress": {"mode": "terminal"}})
    trainer.fit(ToyNet(), toy_loader(n=32, batch_size=4), toy_loader(n=16, batch_size=4))
    err = capfd.readouterr().err  # plain mode draws no evaluation bar: a terminal one here
    assert re.search(r"Epoch 1/1: 100%\|\S+\| 4/4 ", err)
    assert re.search(r"Validation: +0%\|.*\| 0/2 ", err) and not re.search(r" [5-8]/4 ", err)
