"""The data sets that ship with the package (public name: ``trainer.datasets``)."""

from trainer.data.digits import Digits, digits_splits, load_digits

__all__ = ["Digits", "digits_splits", "load_digits"]
