"""Interruptions save: a real signal at a chosen iteration, in a child process, then an exact resume.

The child signals itself from a callback, so no test waits on a clock.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import ToyNet, toy_loader
from tests.trainer.checkpoint.helpers import EPOCH_LEN, assert_same_weights, run
from trainer import Trainer
from trainer.checkpoint.interrupt import AGREE_EVERY
from trainer.checkpoint.io import load_checkpoint, read_last_checkpoint

REPO = Path(__file__).resolve().parents[3]
CHILD_TIMEOUT_S = 120
LENGTHS = {"epoch": {"max_epochs": 4}, "iter": {"max_iters": 17}}
TOTAL = {"epoch": 4 * EPOCH_LEN, "iter": 17}

CHILD = textwrap.dedent("""
    import json, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    from tests.trainer.checkpoint.helpers import SignalAt, run
    work_dir, length, at, signum, rank, to_parent, extra = json.loads(sys.argv[1])
    run(work_dir, length, callbacks=[SignalAt(at, signum, rank, to_parent)], **extra)
    print("the run was not interrupted")
""")


def interrupted_child(work_dir, length, at, signum, rank=0, to_parent=False, **extra):
    """Run the exact-resume training in a child that receives ``signum`` during iteration ``at``."""
    args = json.dumps([str(work_dir), length, at, int(signum), rank, to_parent, extra])
    return subprocess.run([sys.executable, "-c", CHILD, args], cwd=REPO, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT_S,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Uninterrupted runs, one per loop kind, computed once."""
    done = {}

    def get(kind, **extra):
        key = (kind, tuple(sorted(extra.items())))
        if key not in done:
            done[key] = run(tmp_path_factory.mktemp(kind), LENGTHS[kind], **extra)[0]
        return done[key]

    return get


def expected_exits(signum):
    """143 for SIGTERM; an uncaught KeyboardInterrupt ends Python by SIGINT (130 in a shell)."""
    return (-signal.SIGINT, 130) if signum == signal.SIGINT else (128 + signum,)


def assert_interruption_checkpoint(work_dir, n):
    path = work_dir / f"interrupted_iter_{n}.pth"
    assert path.exists(), sorted(p.name for p in work_dir.iterdir())
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["meta"]["interrupted"] is True and ckpt["meta"]["iter"] == n
    assert read_last_checkpoint(str(work_dir)) == str(path)
    assert not list(work_dir.glob("*.tmp-*"))
    return ckpt


CASES = [  # (loop kind, signal, iteration during which it arrives)
    pytest.param("epoch", signal.SIGTERM, EPOCH_LEN - 1, id="epoch-last-batch-before-val"),
    pytest.param("iter", signal.SIGINT, 5, id="iter-right-before-val"),
    *[pytest.param(kind, sig, random.Random(seed).randrange(1, TOTAL[kind] - 1),
                   id=f"{kind}-{sig.name}-seed{seed}", marks=pytest.mark.slow)
      for seed, (kind, sig) in enumerate([("epoch", signal.SIGINT), ("iter", signal.SIGINT),
                                           ("epoch", signal.SIGTERM), ("iter", signal.SIGTERM)])],
]


@pytest.mark.parametrize(("kind", "signum", "at"), CASES)
def test_signal_saves_and_resume_is_bit_identical(tmp_path, capsys, straight, kind, signum, at):
    work_dir = tmp_path / "run"
    child = interrupted_child(work_dir, LENGTHS[kind], at, signum)
    assert child.returncode in expected_exits(signum), child.stderr[-3000:]
    assert "not interrupted" not in child.stdout
    n = at + 1  # the iteration in progress is finished first
    assert_interruption_checkpoint(work_dir, n)
    (line,) = [ln for ln in child.stdout.splitlines() if "interrupted_iter" in ln]
    assert f"{signum.name}: training stopped after iteration {n}" in line
    assert str(work_dir / f"interrupted_iter_{n}.pth") in line and "resume=True" in line
    resumed, trainer = run(work_dir, LENGTHS[kind], resume=True)
    assert f"resumed from {work_dir / f'interrupted_iter_{n}.pth'}" in capsys.readouterr().out
    assert trainer.iter == TOTAL[kind]
    assert_same_weights(straight(kind), resumed)


class TrapOnInterruptedSave:
    """Pickling this sends Ctrl-C to the process: a second Ctrl-C in the middle of the save."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGINT)
        return (dict, ())


SECOND_CTRL_C = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from trainer.callbacks import Callback
    from tests.trainer.checkpoint.helpers import SignalAt, run
    from tests.trainer.checkpoint.test_interrupt import TrapOnInterruptedSave

    class Trap(Callback):
        def before_save_checkpoint(self, trainer, checkpoint):
            if checkpoint["meta"]["interrupted"]:
                checkpoint["trap"] = TrapOnInterruptedSave()

    run(sys.argv[1], {"max_iters": 17}, ckpt_interval=4,
        callbacks=[SignalAt(9, signal.SIGINT), Trap()])
""")


def test_second_ctrl_c_during_the_save_leaves_the_previous_checkpoint(tmp_path):
    work_dir = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", SECOND_CTRL_C, str(work_dir)], cwd=REPO,
                           capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert child.returncode in expected_exits(signal.SIGINT), child.stderr[-3000:]
    assert "KeyboardInterrupt" in child.stderr
    assert not (work_dir / "interrupted_iter_10.pth").exists()
    assert not list(work_dir.glob("*.tmp-*"))  # the half-written file was removed
    assert read_last_checkpoint(str(work_dir)) == str(work_dir / "iter_8.pth")
    assert load_checkpoint(str(work_dir / "iter_8.pth"))["meta"]["iter"] == 8


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "to_parent"), [("iter", False), ("epoch", True)],
                         ids=["iter-one-rank-signalled", "epoch-launching-process-signalled"])
def test_ddp_ranks_agree_when_only_one_receives_sigterm(tmp_path, kind, to_parent):
    """SIGTERM reaches rank 1 only, or only the process that started the workers (which passes
    it on): both ranks stop at the same iteration and the launching process exits 143."""
    ddp = {"devices": 2, "strategy": "ddp"}
    length = {"iter": {"max_iters": 30}, "epoch": {"max_epochs": 10}}[kind]
    total = {"iter": 30, "epoch": 10 * 3}[kind]  # 40 samples, 20 per rank, 3 batches of 8
    work_dir = tmp_path / "run"
    child = interrupted_child(work_dir, length, 9, signal.SIGTERM, rank=1, to_parent=to_parent,
                              **ddp)
    assert child.returncode == 143, child.stderr[-3000:]
    (ckpt,) = work_dir.glob("interrupted_iter_*.pth")
    n = int(ckpt.stem.rsplit("_", 1)[1])
    assert n % AGREE_EVERY == 0 and 10 <= n <= 10 + 2 * AGREE_EVERY
    saved = assert_interruption_checkpoint(work_dir, n)
    assert len(saved["rng"]) == 2
    resumed, trainer = run(work_dir, length, resume=True, **ddp)
    assert trainer.iter == total
    straight_model, _ = run(tmp_path / "straight", length, **ddp)
    assert_same_weights(straight_model, resumed)


def test_fit_restores_the_signal_handlers(work_dir):
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        Trainer(max_iters=2, work_dir=work_dir, default_callbacks={"progress": None}).fit(
            ToyNet(), toy_loader())
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize(("signals", "match"), [
    ("SIGTERM", r"tuple of signal names.*got 'SIGTERM'"),
    (("SIGKILL",), r"'SIGKILL'.*not a signal a process can catch"),
    (("SIGTERM", "SIGNOPE"), r"'SIGNOPE'.*not a signal"),
])
def test_bad_interrupt_signals_are_refused(work_dir, signals, match):
    with pytest.raises(ValueError, match=match):
        Trainer(max_iters=2, work_dir=work_dir, interrupt_signals=signals)


def test_interrupt_signals_accept_short_names_and_members(work_dir):
    trainer = Trainer(max_iters=2, work_dir=work_dir,
                      interrupt_signals=("TERM", signal.SIGUSR1, "sigterm"))
    assert trainer.interrupt_signals == (signal.SIGTERM, signal.SIGUSR1)
