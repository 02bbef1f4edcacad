"""The data sets that ship with the package (public name: ``trainer.datasets``)."""

from trainer.data.digits import digits_splits, load_digits

__all__ = ["digits_splits", "load_digits"]
