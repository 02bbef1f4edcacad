"""``import trainer`` stays light: optional heavy modules load only when a run uses them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torchmetrics", "tensorboard", "trainer.config", "matplotlib", "lightning_utilities")

SCRIPT = """
import json, sys
import trainer
trainer.Trainer(max_iters=5, work_dir=sys.argv[1], log_interval=2)
heavy = sys.argv[2].split(",")
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def loaded_by(script: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_trainer_without_evaluator_or_config_loads_no_optional_module(tmp_path):
    assert loaded_by(SCRIPT, str(tmp_path), ",".join(HEAVY)) == []


def test_an_evaluator_config_loads_torchmetrics_when_it_is_used(tmp_path):
    script = SCRIPT.replace("log_interval=2", 'val_evaluator=dict(type="MeanSquaredError")')
    loaded = loaded_by(script, str(tmp_path), ",".join(HEAVY))
    assert {"torchmetrics", "trainer.config.types"} <= set(loaded)
