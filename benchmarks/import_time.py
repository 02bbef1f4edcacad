"""What ``import trainer`` costs on top of ``import torch``, in fresh interpreters.

Each run starts a new Python that imports torch first and then times ``import trainer`` alone;
the figures are the medians over the runs (``--runs``, default 9) of the wall-clock time and of
the process's CPU time (which other load on a shared machine does not inflate). It also lists
which optional heavy modules a plain ``import trainer; Trainer(...)`` loaded (none should be).
Run with ``python benchmarks/import_time.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, tempfile, time
import torch
start, cpu = time.perf_counter(), time.process_time()
import trainer
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
trainer.Trainer(max_iters=1, work_dir=tempfile.mkdtemp())
heavy = ("torchmetrics", "tensorboard", "trainer.config", "matplotlib")
print(json.dumps({"seconds": seconds, "cpu": cpu, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    runs = [probe() for _ in range(args.runs)]
    wall = sorted(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    loaded = sorted({m for r in runs for m in r["loaded"]})
    print(f"import trainer after import torch: {statistics.median(wall):.3f} s wall-clock "
          f"(min {wall[0]:.3f} s), {cpu:.3f} s CPU, medians of {args.runs} fresh interpreters; "
          f"optional modules loaded by Trainer(...): {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
