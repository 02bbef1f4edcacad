"""Convert EMA checkpoints between this library's layout and MMEngine's ``EMAHook`` layout.

Here (the DESIGN's choice) ``state_dict`` holds the raw weights, so a checkpoint resumes and
fine-tunes from what was trained, and ``ema_state_dict`` the average under the same keys.
MMEngine's ``EMAHook`` stores the average as ``state_dict`` and the raw weights in
``ema_state_dict`` under ``module.<key>``, next to the update count ``steps``.

    python -m trainer convert-ema work_dirs/net/epoch_12.pth net_mmengine.pth --to mmengine
    python -m trainer convert-ema mmengine_epoch_12.pth net.pth --to trainer
"""

from __future__ import annotations

from typing import Any

import torch

LAYOUTS = ("mmengine", "trainer")
_EMA_STATE = "EMACallback"  # the EMA callback's entry in a checkpoint's "callbacks"


def ema_layout(checkpoint: dict[str, Any]) -> str:
    """``"trainer"`` or ``"mmengine"``: which layout ``checkpoint``'s EMA weights are in."""
    weights, ema = checkpoint.get("state_dict"), checkpoint.get("ema_state_dict")
    if not isinstance(weights, dict) or not isinstance(ema, dict):
        raise ValueError("the checkpoint has no EMA weights to convert: it needs both "
                         f"'state_dict' and 'ema_state_dict' (it has {sorted(checkpoint)})")
    if set(ema) == set(weights):
        return "trainer"
    if "steps" in ema and all(k == "steps" or k.startswith("module.") for k in ema):
        return "mmengine"
    raise ValueError("ema_state_dict matches neither layout: not the keys of state_dict (this "
                     "library) nor 'steps' and 'module.<key>' entries (MMEngine's EMAHook)")


def convert_ema_checkpoint(checkpoint: dict[str, Any], to: str) -> dict[str, Any]:
    """``checkpoint`` with its EMA weights in layout ``to`` (``"mmengine"`` or ``"trainer"``).

    The input is not changed; every other entry is kept. The update count moves between
    MMEngine's ``ema_state_dict["steps"]`` and the EMA callback's saved state.

    Example:
        >>> ours = {"state_dict": {"w": torch.tensor(1.)}, "ema_state_dict": {"w": torch.tensor(.5)},
        ...         "callbacks": {"EMACallback": {"steps": 3}}}
        >>> theirs = convert_ema_checkpoint(ours, to="mmengine")
        >>> float(theirs["state_dict"]["w"]), sorted(theirs["ema_state_dict"])
        (0.5, ['module.w', 'steps'])
        >>> convert_ema_checkpoint(theirs, to="trainer")["state_dict"]["w"].item()
        1.0
    """
    if to not in LAYOUTS:
        raise ValueError(f"to must be one of {LAYOUTS}, got {to!r}")
    layout = ema_layout(checkpoint)
    converted = dict(checkpoint)
    if layout == to:
        return converted
    weights, ema = checkpoint["state_dict"], checkpoint["ema_state_dict"]
    callbacks = dict(checkpoint.get("callbacks") or {})
    if to == "mmengine":
        steps = int(callbacks.get(_EMA_STATE, {}).get("steps", 0))
        converted["state_dict"] = dict(ema)
        converted["ema_state_dict"] = {"steps": torch.tensor(steps),
                                       **{f"module.{k}": v for k, v in weights.items()}}
    else:
        raw = {k[len("module."):]: v for k, v in ema.items() if k != "steps"}
        converted["state_dict"] = raw
        converted["ema_state_dict"] = {k: weights[k] for k in raw if k in weights}
        callbacks[_EMA_STATE] = {**callbacks.get(_EMA_STATE, {}), "steps": int(ema["steps"])}
        converted["callbacks"] = callbacks
    return converted


def swap_ema_state_dict(checkpoint: dict[str, Any]) -> None:
    """Convert ``checkpoint`` in place to the other layout (MMEngine's ``_swap_ema_state_dict``)."""
    to = "mmengine" if ema_layout(checkpoint) == "trainer" else "trainer"
    converted = convert_ema_checkpoint(checkpoint, to)
    checkpoint.clear()
    checkpoint.update(converted)


def convert_ema_file(src: str, dst: str, to: str) -> str:
    """Read checkpoint ``src``, convert it to layout ``to`` and write it to ``dst``; returns
    the layout ``src`` was in. Paths may be fsspec URLs; ``src`` loads with weights_only."""
    from trainer.checkpoint.io import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(src)
    layout = ema_layout(checkpoint)
    save_checkpoint(convert_ema_checkpoint(checkpoint, to), dst)
    return layout
