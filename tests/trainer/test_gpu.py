"""CUDA-only checks: fp16 with loss scaling, bf16, DDP over NCCL. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ToyNet, accuracy, toy_loader
from trainer import AmpOptimWrapper, Trainer

pytestmark = pytest.mark.gpu
QUIET = {"progress": None, "logger": None}


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_on_cuda_learns(tmp_path, precision):
    model = ToyNet()
    trainer = Trainer(max_epochs=6, precision=precision, accelerator="cuda", seed=0,
                      work_dir=str(tmp_path), val_evaluator={"acc": accuracy()},
                      default_callbacks=QUIET)
    trainer.fit(model, toy_loader(shuffle=True), toy_loader(n=48, seed=1))
    assert isinstance(trainer.optim_wrapper, AmpOptimWrapper)
    assert next(model.parameters()).is_cuda
    assert trainer.validate()["acc"] > 0.9
    if precision == "16-mixed":
        assert trainer.optim_wrapper.loss_scaler.get_scale() > 0


def test_fp16_scaler_state_is_resumed(tmp_path):
    first = Trainer(max_iters=6, precision="16-mixed", accelerator="cuda", seed=0,
                    work_dir=str(tmp_path / "a"), default_callbacks=QUIET)
    first.fit(ToyNet(), toy_loader(shuffle=True))
    scale = first.optim_wrapper.loss_scaler.get_scale()
    second = Trainer(max_iters=6, precision="16-mixed", accelerator="cuda", resume=True,
                     load_from=first.resolve_ckpt_path("last"), work_dir=str(tmp_path / "b"),
                     default_callbacks=QUIET)
    with pytest.warns(UserWarning, match="already finished"):
        second.fit(ToyNet(), toy_loader(shuffle=True))
    assert second.optim_wrapper.loss_scaler.get_scale() == scale


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_over_nccl_matches_one_process(tmp_path):
    torch.manual_seed(0)
    model, reference = ToyNet(), ToyNet()
    reference.load_state_dict(model.state_dict())
    Trainer(max_iters=6, devices=2, strategy="ddp", accelerator="cuda", seed=0,
            work_dir=str(tmp_path / "ddp"), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            default_callbacks=QUIET).fit(model, toy_loader(n=96, batch_size=8))
    Trainer(max_iters=6, accelerator="cuda", seed=0, work_dir=str(tmp_path / "one"),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            default_callbacks=QUIET).fit(reference, toy_loader(n=96, batch_size=16))
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.allclose(a.cpu(), b.cpu(), atol=1e-5)
