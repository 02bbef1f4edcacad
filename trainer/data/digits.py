"""The small real data set that ships with the package: UCI 8x8 handwritten digits.

1,797 grey-scale 8x8 images of the digits 0-9 (pixel values 0-16), the test part of the UCI
"Optical Recognition of Handwritten Digits" data set by E. Alpaydin and C. Kaynak, licensed
CC BY 4.0. It lets the demo, the notebooks and the tests train a real model in seconds.
"""

from __future__ import annotations

from importlib.resources import files

import torch
from torch.utils.data import TensorDataset


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 ``(1797, 1, 8, 8)`` scaled to [0, 1], labels as int64 ``(1797,)``."""
    import numpy as np

    with files("trainer.data").joinpath("digits.npz").open("rb") as f:
        data = np.load(f)
        images, labels = data["images"], data["labels"]
    x = torch.from_numpy(images).float().div_(16.0).unsqueeze(1)
    return x, torch.from_numpy(labels).long()


def digits_splits(seed: int = 0, val_fraction: float = 0.15,
                  test_fraction: float = 0.15) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """A fixed shuffled train/val/test split of the digits as ``TensorDataset``s."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, "
            f"got {val_fraction} and {test_fraction}")
    x, y = load_digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(len(y) * val_fraction), int(len(y) * test_fraction)
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple(TensorDataset(x[idx], y[idx]) for idx in parts)  # type: ignore[return-value]
