"""Checkpoint files: safe loading, clear errors, atomic saves that survive a kill, fsspec URLs."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time

import fsspec
import pytest
import torch
from fsspec.implementations.memory import MemoryFileSystem
from torch import nn

from tests.conftest import ToyNet, toy_loader
from trainer import BaseModel, Trainer
from trainer.checkpoint.io import load_checkpoint, read_last_checkpoint, save_checkpoint

QUIET = {"progress": None, "logger": None}


def trained(work_dir, **kwargs):
    model = ToyNet()
    trainer = Trainer(max_iters=4, work_dir=str(work_dir), default_callbacks=QUIET, **kwargs)
    trainer.fit(model, toy_loader())
    return model, trainer


def test_everything_the_trainer_writes_loads_with_weights_only(tmp_path):
    trained(tmp_path, param_scheduler=dict(type="StepLR", step_size=2,
                                                        by_epoch=False))
    path = read_last_checkpoint(str(tmp_path))
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) >= {"meta", "state_dict", "optimizer", "param_schedulers", "callbacks",
                         "message_hub", "rng", "data"}
    assert ckpt["meta"]["torch_version"] == str(torch.__version__)
    assert isinstance(ckpt["meta"]["trainer_version"], str)


def test_missing_checkpoint_names_the_path(tmp_path):
    _, trainer = trained(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth does not exist"):
        trainer.load_checkpoint(str(tmp_path / "nope.pth"))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupted_checkpoint_is_named(tmp_path, damage):
    _, trainer = trained(tmp_path / "run")
    good = read_last_checkpoint(str(tmp_path / "run"))
    with open(good, "rb") as f:
        data = f.read()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint" * 50)
    with pytest.raises(ValueError, match=r"bad\.pth is not a valid checkpoint"):
        trainer.load_checkpoint(str(bad))


class Opaque:
    """An arbitrary class: unpickling it means importing and running this module's code."""


def test_file_needing_arbitrary_unpickling_is_refused_unless_trusted(tmp_path):
    model, trainer = trained(tmp_path / "run")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": model.state_dict(), "extra": Opaque()}, unsafe)
    with pytest.raises(ValueError, match=r"arbitrary unpickling.*weights_only=False"):
        trainer.load_checkpoint(str(unsafe))
    ckpt = trainer.load_checkpoint(str(unsafe), weights_only=False)
    assert isinstance(ckpt["extra"], Opaque)


class Wider(BaseModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
        self.head = nn.Linear(3, 3)

    def forward(self, x, y=None, mode="tensor"):
        return self.head(self.body(x))


def test_checkpoint_of_another_model_lists_keys_and_shapes(tmp_path):
    trained(tmp_path / "run")
    path = read_last_checkpoint(str(tmp_path / "run"))
    other = Wider()
    t = Trainer(max_iters=1, work_dir=str(tmp_path / "other"), default_callbacks=QUIET)
    t.model = other
    with pytest.raises(ValueError) as info:
        t.load_checkpoint(path)
    message = str(info.value)
    assert "missing keys: body.2.weight, body.2.bias, head.weight, head.bias;" in message
    assert "unexpected keys: body.3.weight, body.3.bias;" in message
    assert "body.0.weight: checkpoint (32, 8) vs model (64, 8)" in message
    assert "strict=False" in message
    before = other.head.weight.detach().clone()
    with pytest.warns(UserWarning, match="loaded only matching weights"):
        t.load_checkpoint(path, strict=False)
    assert torch.equal(before, other.head.weight)


def test_save_killed_mid_write_leaves_the_last_good_checkpoint(tmp_path):
    """A process killed while writing a large checkpoint leaves no half file, pointer intact."""
    good = tmp_path / "iter_1.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(3)}}, str(good))
    (tmp_path / "last_checkpoint").write_text(str(good))
    script = textwrap.dedent(f"""
        import torch
        from trainer.checkpoint.io import save_checkpoint
        big = {{"state_dict": {{f"w{{i}}": torch.randn(4_000_000) for i in range(10)}}}}
        print("saving", flush=True)
        save_checkpoint(big, {str(tmp_path / "iter_2.pth")!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("iter_2.pth.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the temporary file exists, then kill mid-write
    proc.kill()
    proc.wait()
    assert not (tmp_path / "iter_2.pth").exists()
    assert read_last_checkpoint(str(tmp_path)) == str(good)
    assert torch.equal(load_checkpoint(str(good))["state_dict"]["w"], torch.ones(3))


def test_memory_filesystem_end_to_end_with_resume():
    work_dir = "memory://ckpt_e2e"
    trained(work_dir)
    fs = fsspec.filesystem("memory")
    assert fs.exists("/ckpt_e2e/iter_4.pth") and fs.exists("/ckpt_e2e/last_checkpoint")
    assert not [p for p in fs.find("/ckpt_e2e") if ".tmp-" in p]
    resumed = Trainer(max_iters=6, work_dir=work_dir, resume=True, default_callbacks=QUIET)
    resumed.fit(ToyNet(), toy_loader())
    assert resumed.iter == 6 and fs.exists("/ckpt_e2e/iter_6.pth")
    assert read_last_checkpoint(work_dir) == f"{work_dir}/iter_6.pth"


def test_fit_ckpt_path_resumes_like_lightning(tmp_path):
    _, first = trained(tmp_path / "first")
    trainer = Trainer(max_iters=7, work_dir=str(tmp_path / "second"), default_callbacks=QUIET)
    trainer.fit(ToyNet(), toy_loader(), ckpt_path=first.resolve_ckpt_path("last"))
    assert trainer.iter == 7


def test_save_checkpoint_leaves_the_pointer_alone(tmp_path):
    model, trainer = trained(tmp_path / "run")
    pointer = read_last_checkpoint(str(tmp_path / "run"))
    trainer.save_checkpoint(str(tmp_path / "manual.pth"))
    assert read_last_checkpoint(str(tmp_path / "run")) == pointer
    assert torch.equal(load_checkpoint(str(tmp_path / "manual.pth"))["state_dict"]["body.0.weight"],
                       model.body[0].weight)


def test_last_without_pointer_is_a_clear_error(tmp_path):
    trainer = Trainer(max_iters=1, work_dir=str(tmp_path / "empty"), default_callbacks=QUIET)
    with pytest.raises(ValueError, match="has no last_checkpoint"):
        trainer.test(ToyNet(), toy_loader(), ckpt_path="last")


class FullDisk(MemoryFileSystem):
    """A filesystem whose disk fills up while ``iter_4.pth`` is written."""

    protocol = "fulldisk"
    root_marker = "/"

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        if "iter_4.pth" in path and "w" in mode:
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            f.write = write
        return f


def test_failing_write_is_an_oserror_naming_the_checkpoint_and_keeps_the_last_one():
    fsspec.register_implementation("fulldisk", FullDisk, clobber=True)
    work_dir = "fulldisk://full_run"
    trainer = Trainer(max_iters=6, work_dir=work_dir, default_callbacks={
        **QUIET, "checkpoint": {"interval": 2, "by_epoch": False}})
    with pytest.raises(OSError, match=r"could not write checkpoint fulldisk://full_run/iter_4\.pth"
                                      r": .*No space left on device") as info:
        trainer.fit(ToyNet(), toy_loader())
    assert info.value.errno == errno.ENOSPC
    assert trainer.iter == 3  # the save of iteration 4 failed inside its after_train_iter
    assert read_last_checkpoint(work_dir) == f"{work_dir}/iter_2.pth"
    assert load_checkpoint(f"{work_dir}/iter_2.pth")["meta"]["iter"] == 2
    assert not [p for p in fsspec.filesystem("fulldisk").find("/full_run") if ".tmp-" in p]
