"""The small real data set that ships with the package: UCI 8x8 handwritten digits.

1,797 grey-scale 8x8 images of the digits 0-9 (pixel values 0-16), the test part of the UCI
"Optical Recognition of Handwritten Digits" data set by E. Alpaydin and C. Kaynak, licensed
CC BY 4.0. It lets the demo, the notebooks and the tests train a real model in seconds.
"""

from __future__ import annotations

from importlib.resources import files

import torch
from torch.utils.data import Dataset, TensorDataset

SPLITS = ("train", "val", "test")


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


class Digits(Dataset):
    """One split of the shipped digits as a map-style data set that a config can name.

    Items are ``(image, label)``: a float32 ``(1, 8, 8)`` tensor in [0, 1] and an int64 scalar.
    The splits are those of ``digits_splits`` (fixed by ``seed``), so ``"train"``, ``"val"`` and
    ``"test"`` built with the same arguments never share an image.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        seed, val_fraction, test_fraction: as for ``digits_splits``.

    Example:
        >>> train = Digits(split="train")
        >>> len(train), train[0][0].shape
        (1259, torch.Size([1, 8, 8]))
        >>> cfg = dict(dataset=dict(type="trainer.datasets.Digits", split="val"), batch_size=64)
    """

    def __init__(self, split: str = "train", seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15) -> None:
        if split not in SPLITS:
            raise ValueError(f"Digits split must be one of {SPLITS}, got {split!r}")
        self.split = split
        part = digits_splits(seed, val_fraction, test_fraction)[SPLITS.index(split)]
        self.images, self.labels = part.tensors

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]
