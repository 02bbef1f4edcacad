"""Machine instructions and cache misses per training iteration, raw loop against ``Trainer.fit``.

On a shared machine the clock varies by more than the overhead being measured (the raw loop of
``overhead.py`` has measured anywhere from 380 to 990 µs per iteration on one machine). What an
iteration executes hardly does: under ``valgrind --tool=cachegrind`` the number of instructions
repeats to within about 10,000 of about 1.9 million (0.5 %) between runs made at different
times. Each loop of ``overhead.py`` (tiny MLP, batch 32, one thread) is run for two lengths in a
fresh interpreter; the difference divided by the difference in iterations is the cost of one
iteration, set-up, imports and the last checkpoint cancelling out.

Instructions alone are not time: most of a small model's iteration is spent waiting for memory,
so the simulated misses of the last cache level (``LL``, set to a 512 KB core cache here) are
counted too: the extra code of a loop costs more in misses (its bytecode and objects are read
cold, every iteration) than in instructions. The modelled time, instructions + 226 x misses
(226 fitted on the machine of README.md), matched the clock there for two configurations and
then ran 1.5 % under it for changes the clock did not show (see README.md): it is a guide to
where the time goes, not a replacement for ``overhead.py``.

``python benchmarks/instructions.py`` (about fifteen minutes on two cores; needs valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

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
    # No interpreter shutdown: its collection over every object misses the cache by an amount
    # that differs between the two lengths by up to 40 misses per iteration, noise to the count.
    os._exit(0)


# A 2019-2022 x86 server core: 32 KB 8-way first-level caches, a 512 KB 8-way second level
# (cachegrind simulates two levels; the shared third level of the real machine is not modelled).
CACHES = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64")
MISS_COST = 226  # instructions' worth of time per LL miss, fitted on README.md's machine


class Counts(NamedTuple):
    instructions: float
    misses: float  # of the last simulated cache level, instruction and data

    def cost(self) -> float:
        return self.instructions + MISS_COST * self.misses


def counts(loop: str, iters: int, out_file: str = "/dev/null") -> Counts:
    """What a fresh interpreter running ``loop`` for ``iters`` batches executes and misses;
    cachegrind's per-function counts go to ``out_file``."""
    # Fixed hash seed and no address randomisation: otherwise dict layouts differ between runs.
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", *CACHES,
               f"--cachegrind-out-file={out_file}",
               sys.executable, __file__, "--child", loop, str(iters)]
    if shutil.which("setarch"):
        command = ["setarch", "-R", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    found = [re.search(rf"{name}:\s+([\d,]+)", done.stderr) for name in ("I\\s+refs", "LL misses")]
    if done.returncode or None in found:  # the child's own error is in valgrind's output
        raise RuntimeError(f"{loop} loop, {iters} iterations, exit status {done.returncode}; "
                           f"the end of its output:\n{done.stderr[-2000:]}")
    return Counts(*(int(match.group(1).replace(",", "")) for match in found))


def function_misses(short_file: str, long_file: str, iters: int) -> dict[str, float]:
    """LL misses per iteration of each C function (``file:function``), from the outputs of a
    short and a long run that differ by ``iters`` iterations."""
    diff_file = f"{long_file}.diff"
    with open(diff_file, "w") as diff:
        subprocess.run(["cg_diff", short_file, long_file], stdout=diff, check=True)
    table = subprocess.run(["cg_annotate", "--show=ILmr,DLmr,DLmw", "--threshold=0", "--auto=no",
                            "--show-percs=no", diff_file],
                           capture_output=True, text=True, check=True).stdout
    misses: dict[str, float] = {}
    for line in table.split("file:function")[-1].splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) == 4 and all(re.fullmatch(r"-?[\d,]+", f) for f in fields[:3]):
            name = fields[3].rsplit("/", 1)[-1]  # the file's name, not the build's path
            total = sum(int(f.replace(",", "")) for f in fields[:3])
            misses[name] = misses.get(name, 0.0) + total / iters
    return misses


def print_functions(per_function: dict[str, dict[str, float]], shown: int) -> None:
    """The functions where the Trainer (progress bar off) misses most more than the raw loop:
    a cold Python layer shows up in the interpreter's functions, a data layout in torch's."""
    raw, ours = per_function["raw"], per_function["off"]
    extra = {name: ours.get(name, 0.0) - raw.get(name, 0.0) for name in raw.keys() | ours.keys()}
    print(f"\nLL misses per iteration, Trainer (bar off) less raw loop, the {shown} largest:")
    for name in sorted(extra, key=extra.__getitem__, reverse=True)[:shown]:
        print(f"{extra[name]:>8.0f}  {name[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=100, help="iterations of the short run")
    parser.add_argument("--long", type=int, default=300, help="iterations of the long run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--functions", type=int, default=0, metavar="N",
                        help="also list the N C functions with the most extra misses")
    parser.add_argument("--child", nargs=2, metavar=("LOOP", "ITERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("benchmarks/instructions.py needs valgrind (apt install valgrind)")
    runs = [(loop, n) for loop in LOOPS for n in (args.short, args.long)]
    with tempfile.TemporaryDirectory() as outputs, ThreadPoolExecutor(args.jobs) as pool:
        files = {run: f"{outputs}/{run[0]}_{run[1]}.out" if args.functions else "/dev/null"
                 for run in runs}
        measured = dict(zip(runs, pool.map(lambda run: counts(*run, files[run]), runs)))
        per_function = {loop: function_misses(files[loop, args.short], files[loop, args.long],
                                              args.long - args.short)
                        for loop in ("raw", "off")} if args.functions else {}
    per_iter = {loop: Counts(*((long - short) / (args.long - args.short) for short, long in zip(
        measured[loop, args.short], measured[loop, args.long]))) for loop in LOOPS}
    raw = per_iter["raw"]
    print(f"tiny MLP, batch 32, 1 CPU thread: per iteration, from runs of {args.short} and "
          f"{args.long} iterations; time modelled as instructions + {MISS_COST} x LL misses")
    print(f"{'loop':<27} {'instructions':>12} {'ratio':>7} {'LL misses':>10} {'ratio':>7} "
          f"{'modelled time ratio':>20}")
    for loop, name in LOOPS.items():
        it = per_iter[loop]
        print(f"{name:<27} {it.instructions:>12,.0f} {it.instructions / raw.instructions:>7.4f} "
              f"{it.misses:>10,.0f} {it.misses / raw.misses:>7.4f} "
              f"{it.cost() / raw.cost():>20.4f}")
    if per_function:
        print_functions(per_function, args.functions)

if __name__ == "__main__":
    main()
