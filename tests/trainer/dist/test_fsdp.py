"""FSDP2 and sharded checkpoints for real: two CPU processes over gloo, several runs per launch."""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn
from trainer.callbacks import EMACallback

from tests.conftest import ToyNet, accuracy, toy_dataset, toy_loader
from tests.trainer.dist.test_ddp import TwoHeads
from trainer import Trainer, cli, dist
from trainer.checkpoint.sharded import consolidate, is_sharded_checkpoint

pytestmark = pytest.mark.skipif(not torch_dist.is_available(),
                                reason="torch.distributed is not available")
REPO = Path(__file__).resolve().parents[3]
QUIET = {"progress": None, "logger": None}
FSDP = dict(type="fsdp", wrap=[nn.Linear])


def launch(fn, out: Path, nprocs: int = 2):
    """Run ``fn(rank, out)`` in ``nprocs`` processes of one gloo group; rank zero's result."""
    port = dist.free_port()
    mp.start_processes(_worker, args=(fn, nprocs, port, str(out)), nprocs=nprocs,
                       start_method="fork", join=True)
    return torch.load(out / "result.pt", weights_only=True)


def _worker(rank, fn, nprocs, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_WORLD_SIZE=str(nprocs))
    torch_dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        result = fn(rank, Path(out))
        if rank == 0:
            torch.save(result, Path(out) / "result.pt")
    finally:
        torch_dist.destroy_process_group()


class Probe(ToyNet):
    """Records the dtype its first layer computes in (bf16 under the mixed-precision policy)."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.body[0].register_forward_pre_hook(self.record)  # runs after FSDP's gather

    def record(self, layer, args):
        self.compute_dtype = str(layer.weight.dtype)


class Block(nn.Module):
    """A shard unit that counts its forwards (activation checkpointing runs each twice)."""

    def __init__(self, width_in, width_out):
        super().__init__()
        self.fc = nn.Linear(width_in, width_out)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.relu(self.fc(x))


class BlockNet(ToyNet):
    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.body = nn.Sequential(Block(8, 32), Block(32, 32), nn.Linear(32, 3))


def adamw(counts=1):
    return dict(optimizer=dict(type="AdamW", lr=0.01), accumulative_counts=counts,
                clip_grad=dict(max_norm=1.0))


def train(work_dir, strategy, *, epochs=None, iters=None, dropout=0.0, counts=1, ckpt=None,
          model_cls=ToyNet, optim_wrapper=None, **kwargs):
    """One seeded run; returns the trainer and the full weights (on rank zero)."""
    torch.manual_seed(1)
    model = model_cls(dropout=dropout) if dropout else model_cls()
    callbacks = {**QUIET, "checkpoint": ckpt} if ckpt is not None else QUIET
    trainer = Trainer(max_epochs=epochs, max_iters=iters, work_dir=str(work_dir), seed=0,
                      strategy=strategy, default_callbacks=callbacks,
                      optim_wrapper=optim_wrapper or adamw(counts), **kwargs)
    trainer.fit(model, toy_loader(n=40, batch_size=4, shuffle=True))
    return trainer, trainer.strategy.full_state_dict(trainer.model)


def equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _main_scenarios(rank, out):
    results = {}
    # The same run under DDP and FSDP (accumulation of 2, clipping, AdamW).
    ddp_run, ddp = train(out / "ddp", "ddp", epochs=2, counts=2)
    fsdp_run, fsdp = train(out / "fsdp", FSDP, epochs=2, counts=2)
    if rank == 0:
        results["wrapper"] = (dist.is_model_wrapper(ddp_run.wrapped_model),
                              dist.is_model_wrapper(fsdp_run.model),
                              fsdp_run.model is fsdp_run.wrapped_model)
        results["max_diff"] = max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp)
        results["moved"] = (ddp["body.0.weight"] - ToyNet().body[0].weight).abs().max().item()
    # A model with its own train_step and two optimizers, under DDP and FSDP.
    two = dict(body=dict(optimizer=dict(type="SGD", lr=0.1)),
               head=dict(optimizer=dict(type="SGD", lr=0.1)))
    _, ddp = train(out / "ddp-two", "ddp", epochs=1, model_cls=TwoHeads, optim_wrapper=two)
    _, fsdp = train(out / "fsdp-two", FSDP, epochs=1, model_cls=TwoHeads, optim_wrapper=two)
    if rank == 0:
        results["two_max_diff"] = max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp)
    # Units chosen by a callable, activation checkpointing and CPU offload change no number.
    block = lambda m: isinstance(m, Block)  # noqa: E731
    plain, plain_weights = train(out / "blocks", dict(type="fsdp", wrap=block), epochs=1,
                                 model_cls=BlockNet)
    ac, ac_weights = train(out / "blocks-ac", dict(type="fsdp", wrap=block, cpu_offload=True,
                                                   activation_checkpointing=True),
                           epochs=1, model_cls=BlockNet)
    if rank == 0:
        results["ac_equal"] = equal(plain_weights, ac_weights)
        results["calls"] = (plain.model.body[0].calls, ac.model.body[0].calls)
    # Resume inside an accumulation window, mid-epoch, for both loop kinds; the first run saves
    # asynchronously, the resumed one synchronously.
    # bf16-mixed keeps the window's gradients elsewhere (fp32, beside the bf16 parameters).
    for kind, length in (("epoch", dict(epochs=3)), ("iter", dict(iters=9)),
                         ("bf16", dict(iters=9, precision="bf16-mixed"))):
        every4 = {"interval": 4, "by_epoch": False, "async_save": True}
        _, straight = train(out / f"{kind}-straight", FSDP, dropout=0.3, counts=3, ckpt=every4,
                            **length)
        resumed_from = str(out / f"{kind}-straight" / "iter_4.pth")
        _, resumed = train(out / f"{kind}-resumed", FSDP, dropout=0.3, counts=3, resume=True,
                           load_from=resumed_from, **length)
        if rank == 0:
            results[f"{kind}_bit_identical"] = equal(straight, resumed)
            results[f"{kind}_differs_from_init"] = not equal(straight, ToyNet().state_dict())
    # bf16-mixed: bf16 compute, fp32 master weights, and it still learns.
    trainer, weights = train(out / "bf16", FSDP, epochs=3, precision="bf16-mixed",
                             model_cls=Probe)
    if rank == 0:
        x, y = toy_dataset(40).tensors
        net = ToyNet()
        net.load_state_dict(weights)
        results["bf16"] = dict(compute=trainer.model.compute_dtype,
                               master=str(weights["body.0.weight"].dtype),
                               loss=nn.functional.cross_entropy(net(x), y).item())
    # Mistakes, each before any training.
    for name, kwargs, model in (
            ("wrap", dict(strategy=dict(type="fsdp", wrap=[nn.Conv2d])), ToyNet()),
            ("optimizer", dict(strategy="fsdp"), ToyNet())):
        if name == "optimizer":
            kwargs["optim_wrapper"] = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = Trainer(max_iters=2, work_dir=str(out / name), default_callbacks=QUIET,
                          **kwargs)
        try:
            trainer.fit(model, toy_loader())
        except ValueError as err:
            results[f"{name}_error"] = (str(err), trainer.iter)
    return results


@pytest.mark.slow
def test_fsdp_matches_ddp_resumes_bit_identically_and_runs_bf16(tmp_path):
    results = launch(_main_scenarios, tmp_path)
    # Two ranks: a reduce-scatter adds the same two gradients as DDP's all-reduce, and dividing
    # by 2 is exact, so only the clipping norm (summed per shard, then across ranks, instead of
    # over the whole vector) rounds differently: a few float32 ulps per step.
    assert results["max_diff"] < 1e-6 < results["moved"]
    assert results["wrapper"] == (True, False, True)  # sharded in place: no .module
    for kind in ("epoch", "iter", "bf16"):
        assert results[f"{kind}_bit_identical"] and results[f"{kind}_differs_from_init"], kind
    bf16 = results["bf16"]
    assert bf16["compute"] == "torch.bfloat16" and bf16["master"] == "torch.float32"
    assert bf16["loss"] < 0.3  # from ~1.1 at initialisation
    assert results["two_max_diff"] < 1e-6
    assert results["ac_equal"] and results["calls"] == (5, 10)  # recomputed in every backward
    message, iters = results["wrap_error"]
    assert "does not contain" in message and "Linear" in message and iters == 0
    message, iters = results["optimizer_error"]
    assert "built after the model is sharded" in message and iters == 0


def test_sharded_checkpoint_loads_into_one_process_and_consolidates(tmp_path):
    """Spawned by the trainer itself: the caller's model gets the gathered weights. Paths are
    file:// URLs, so every step goes through fsspec."""
    val = toy_loader(n=13, batch_size=4, seed=5)  # ranks get 2 and 1 batches: uneven is fine
    torch.manual_seed(0)
    model = ToyNet()
    url = f"file://{tmp_path}"
    trainer = Trainer(max_epochs=2, devices=2, strategy=FSDP, work_dir=f"{url}/run",
                      seed=0, val_evaluator={"acc": accuracy()}, default_callbacks=QUIET,
                      optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01)))
    trainer.fit(model, toy_loader(n=40, batch_size=4, shuffle=True), val)
    fsdp_acc = trainer.message_hub.get_scalar("val/acc").current()
    one_process = Trainer(max_epochs=1, work_dir=str(tmp_path / "val"),
                          val_evaluator={"acc": accuracy()}, default_callbacks=QUIET)
    assert one_process.validate(model, val)["acc"] == fsdp_acc  # gathered as under DDP
    ckpt_dir, ckpt_url = tmp_path / "run" / "epoch_2.pth", f"{url}/run/epoch_2.pth"
    assert is_sharded_checkpoint(ckpt_url)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp", "trainer_state.pt"]
    assert (tmp_path / "run" / "last_checkpoint").read_text() == ckpt_url

    assert cli.main(["consolidate", ckpt_url, f"{url}/one.pth"]) == 0
    one = torch.load(tmp_path / "one.pth", weights_only=True)
    assert one["meta"]["epoch"] == 2 and equal(one["state_dict"], model.state_dict())

    tester = Trainer(max_epochs=1, work_dir=str(tmp_path / "test"), val_evaluator={"acc": accuracy()},
                     default_callbacks=QUIET)
    from_file = tester.test(ToyNet(), val, ckpt_path=str(tmp_path / "one.pth"))
    from_dir = tester.test(ToyNet(), val, ckpt_path=ckpt_url)
    assert from_file == from_dir and from_file["acc"] > 0.6

    # Resume with one process (a plain run): weights, optimizer and counters come back.
    single = Trainer(max_epochs=2, work_dir=str(tmp_path / "single"), resume=True,
                     load_from=str(ckpt_dir), default_callbacks=QUIET,
                     optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01)))
    resumed = ToyNet()
    single.fit(resumed, toy_loader(n=40, batch_size=4))  # at max_epochs already: no training
    assert equal(resumed.state_dict(), model.state_dict()) and single.iter == 10
    step = single.optim_wrapper.optimizer.state[resumed.body[0].weight]["step"]
    assert step.item() == 10  # 5 steps per epoch per rank, each rank's shard saw all 10
    single = Trainer(max_epochs=3, work_dir=str(tmp_path / "single3"), resume=True,
                     load_from=str(ckpt_dir), default_callbacks=QUIET,
                     optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01)))
    single.fit(resumed, toy_loader(n=40, batch_size=4))
    assert single.epoch == 3 and single.iter == 20  # one process: 10 batches in epoch 3

    class Wider(ToyNet):
        def __init__(self):
            super().__init__()
            self.body[0] = nn.Linear(8, 64)
            self.extra = nn.Linear(3, 3)

    wider = Trainer(max_epochs=1, work_dir=str(tmp_path / "wider"), load_from=str(ckpt_dir),
                    default_callbacks=QUIET)
    with pytest.raises(ValueError, match=r"do not fit Wider: missing keys: extra.weight, "
                       r"extra.bias; shape mismatches: body.0.weight: checkpoint \(32, 8\) vs "
                       r"model \(64, 8\)"):
        wider.fit(Wider(), toy_loader())
    assert wider.iter == 0


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from fsspec.implementations.local import LocalFileSystem
    from torch import nn
    from tests.conftest import ToyNet, toy_loader
    from trainer import Trainer

    open_file = LocalFileSystem.open

    def dying_open(self, path, mode="rb", **kwargs):
        '''The machine dies while the shards of iter_4 are being written.'''
        f = open_file(self, path, mode, **kwargs)
        if "w" in mode and "iter_4" in str(path) and str(path).endswith(".distcp"):
            f.write(b"half a shard")
            f.flush()
            os.killpg(os.getpgid(0), signal.SIGKILL)  # the whole job, all ranks
        return f

    LocalFileSystem.open = dying_open
    trainer = Trainer(max_iters=6, devices=2, strategy=dict(type="fsdp", wrap=[nn.Linear]),
                      work_dir=sys.argv[1], seed=0,
                      default_callbacks={"progress": None, "logger": None,
                                         "checkpoint": {"interval": 2, "by_epoch": False}})
    trainer.fit(ToyNet(), toy_loader())
""")


@pytest.mark.slow
def test_a_kill_during_a_sharded_save_leaves_the_previous_checkpoint(tmp_path):
    script, work_dir = tmp_path / "train.py", tmp_path / "run"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(work_dir)], cwd=REPO, timeout=120,
                          capture_output=True, text=True, start_new_session=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    names = sorted(p.name for p in work_dir.iterdir())
    assert "iter_2.pth" in names and "iter_4.pth" not in names
    assert any(n.startswith("iter_4.pth.tmp-") for n in names)  # the half save, never renamed
    assert (work_dir / "last_checkpoint").read_text().endswith("iter_2.pth")
    resumed = Trainer(max_iters=2, work_dir=str(work_dir), resume=True, default_callbacks=QUIET,
                      optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    with pytest.warns(UserWarning, match="already finished"):
        resumed.fit(ToyNet(), toy_loader())
    assert resumed.iter == 2


def test_bad_fsdp_arguments_are_refused_when_the_trainer_is_built(tmp_path):
    with pytest.raises(ValueError, match="devices=1 and no process group: pass devices=2"):
        Trainer(max_iters=1, strategy="fsdp")
    with pytest.raises(ValueError, match=r"wrap must be a list of nn\.Module classes"):
        Trainer(max_iters=1, devices=2, strategy=dict(type="fsdp", wrap="Linear"))
    with pytest.raises(ValueError, match=r"unknown options \['shard'\]"):
        Trainer(max_iters=1, devices=2, strategy=dict(type="fsdp", shard=True))
    with pytest.raises(ValueError, match="memory:// store lives in one process"):
        Trainer(max_iters=1, devices=2, strategy="fsdp", work_dir="memory://run")
    with pytest.raises(ValueError, match="not '16-mixed'; use 'bf16-mixed'"):
        Trainer(max_iters=1, devices=2, strategy="fsdp", precision="16-mixed")
    with pytest.raises(ValueError, match="EMACallback keeps a copy of the model"):
        Trainer(max_iters=1, devices=2, strategy="fsdp", callbacks=[EMACallback()])


def test_consolidate_refuses_what_is_not_a_sharded_checkpoint(tmp_path, capsys):
    with pytest.raises(ValueError, match="not a sharded checkpoint directory"):
        consolidate(str(tmp_path), str(tmp_path / "out.pth"))
    assert cli.main(["consolidate", str(tmp_path), str(tmp_path / "out.pth")]) == 2
    assert "Trainer(strategy='fsdp') wrote" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()


class Payload:
    """What a hostile ``.metadata`` could hold: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_metadata_that_would_run_code_is_refused(tmp_path):
    ckpt = tmp_path / "epoch_1.pth"
    ckpt.mkdir()
    marker = tmp_path / "pwned"
    (ckpt / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match=r"not DCP metadata that loads safely.*(posix|nt)\.system"):
        consolidate(str(ckpt), str(tmp_path / "out.pth"))
    with pytest.raises(ValueError, match="not DCP metadata that loads safely"):
        Trainer(max_epochs=1, work_dir=str(tmp_path / "run"), load_from=str(ckpt),
                default_callbacks=QUIET).fit(ToyNet(), toy_loader())
    assert not marker.exists()
