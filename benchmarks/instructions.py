"""Machine instructions per training iteration, raw loop against ``Trainer.fit``, under valgrind.

On a shared machine the clock varies by more than the overhead being measured (the raw loop of
``overhead.py`` has measured anywhere from 380 to 990 µs per iteration on one machine). The
number of instructions an iteration executes hardly does: under ``valgrind --tool=cachegrind``
it repeats to within about 10,000 of about 1.9 million (0.5 %) between runs made at different
times, and two runs started together agree to a few thousand in all. Each loop of ``overhead.py``
(tiny MLP, batch 32, one thread) is run for two lengths in a fresh interpreter; the difference
divided by the difference in iterations is the cost of one iteration, set-up, imports and the
last checkpoint cancelling out. Instructions are not time: Python code runs fewer instructions
per cycle than torch's kernels, so the time ratio is larger than this one (see README.md).

``python benchmarks/instructions.py`` (about ten minutes on two cores; needs valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOOPS = {"raw": "raw loop", "off": "Trainer, progress bar off", "on": "Trainer, progress bar on"}


def run_child(loop: str, iters: int) -> None:
    """The measured process: one loop of ``overhead.py`` over ``iters`` batches.

    The garbage collector is off. In a fresh interpreter its full passes are set off by what
    torch imports lazily during the first iterations, at points that differ between the two
    lengths, and one pass over torch's objects costs as much as dozens of iterations; in the
    rounds of ``overhead.py`` neither loop sets off more than one young-generation pass per
    2,000 iterations.
    """
    import gc

    gc.disable()
    import torch
    from overhead import TinyMLP, make_loader, raw_loop, trainer_loop

    torch.set_num_threads(1)
    loader = make_loader(TinyMLP, iters)
    if loop == "raw":
        raw_loop(TinyMLP, loader, iters, "cpu")
    else:
        trainer_loop(TinyMLP, loader, iters, "cpu", progress=loop == "on")


def instructions(loop: str, iters: int) -> int:
    """Instructions executed by a fresh interpreter running ``loop`` for ``iters`` batches."""
    # Fixed hash seed and no address randomisation: otherwise dict layouts differ between runs.
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, __file__, "--child", loop, str(iters)]
    if shutil.which("setarch"):
        command = ["setarch", "-R", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode or found is None:  # the child's own error is in valgrind's output
        raise RuntimeError(f"{loop} loop, {iters} iterations, exit status {done.returncode}; "
                           f"the end of its output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=100, help="iterations of the short run")
    parser.add_argument("--long", type=int, default=300, help="iterations of the long run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, metavar=("LOOP", "ITERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("benchmarks/instructions.py needs valgrind (apt install valgrind)")
    runs = [(loop, n) for loop in LOOPS for n in (args.short, args.long)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs)))
    per_iter = {loop: (counts[loop, args.long] - counts[loop, args.short])
                / (args.long - args.short) for loop in LOOPS}
    print(f"tiny MLP, batch 32, 1 CPU thread: instructions per iteration, runs of {args.short} "
          f"and {args.long} iterations")
    fixed = {loop: counts[loop, args.short] - per_iter[loop] * args.short for loop in LOOPS}
    for loop, name in LOOPS.items():
        print(f"{name:<27} {per_iter[loop]:>12,.0f}   ratio {per_iter[loop] / per_iter['raw']:.4f}"
              f"   outside the iterations, over the raw loop's: "
              f"{(fixed[loop] - fixed['raw']) / 1e6:>7.2f} M")


if __name__ == "__main__":
    main()
