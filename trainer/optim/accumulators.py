"""Each parameter's gradient accumulator, kept alive for the length of a run.

Autograd adds a parameter's gradient into ``.grad`` through an ``AccumulateGrad`` node that it
holds weakly: when the last graph that used the node is freed, so is the node, and the next
forward builds a new one for every parameter. A hand-written loop keeps the previous ``loss``
(and through it the nodes) alive until the next one is assigned; ``train_step`` returns only
the detached losses, so without this every iteration would rebuild them (on the benchmarks'
tiny MLP, about 0.7 % of an iteration). DDP's reducer already holds them; holding them twice
costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.autograd.graph import get_gradient_edge


@contextlib.contextmanager
def gradient_accumulators_kept(module: nn.Module) -> Iterator[None]:
    """Hold the accumulators of ``module``'s trainable parameters until the block ends, so that
    every iteration's graph reuses them; a parameter unfrozen later gets one as usual."""
    kept = [get_gradient_edge(p).node for p in module.parameters() if p.requires_grad]
    try:
        yield
    finally:
        kept.clear()  # the run is over: autograd owns them again, as before the run
