"""One toy model and data set shared by the whole suite."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trainer.callbacks import Callback

from trainer import BaseModel


class ToyNet(BaseModel):
    """A small MLP classifier over 8 features and 3 classes (the DESIGN example)."""

    def __init__(self, dropout: float = 0.0, lr: float = 0.1) -> None:
        super().__init__()
        self.lr = lr
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(32, 3))

    def forward(self, x, y=None, mode="tensor"):
        logits = self.body(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        if mode == "predict":
            return logits.argmax(1), y
        return logits

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def toy_dataset(n: int = 96, seed: int = 0) -> TensorDataset:
    """Three linearly separable-ish clusters: a model that learns gets well above chance."""
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(1234)) * 2
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + 0.5 * torch.randn(n, 8, generator=g)
    return TensorDataset(x, y)


def toy_loader(n: int = 96, batch_size: int = 8, shuffle: bool = False, seed: int = 0,
               **kwargs) -> DataLoader:
    return DataLoader(toy_dataset(n, seed), batch_size=batch_size, shuffle=shuffle, **kwargs)


@pytest.fixture
def work_dir(tmp_path) -> str:
    return str(tmp_path / "work")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def one_rank_group():
    """A real gloo process group of one rank, for wrapping a model in DDP in this process."""
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0,
                                         world_size=1)
    yield
    torch.distributed.destroy_process_group()


class SaveAfterValidation(Callback):
    """Saves a checkpoint after validation number ``after`` (once the other callbacks and the
    schedulers have counted it), and with ``stop=True`` ends training there."""

    priority = "LOWEST"  # after every other callback's after_val_epoch

    def __init__(self, path, after, stop=False):
        super().__init__()
        self.path, self.after, self.stop, self.seen = path, after, stop, 0

    def after_val_epoch(self, trainer, metrics=None):
        self.seen += 1
        if self.seen == self.after:
            trainer.save_checkpoint(self.path)
            if self.stop:
                trainer.stop_training = True


def accuracy():
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(num_classes=3, average="micro")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skip them cleanly where there is none (CI)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
