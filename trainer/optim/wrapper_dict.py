"""``OptimWrapperDict``: several named optimizer wrappers (a GAN's generator and discriminator).

It saves, loads, zeroes and reports all of them together, but refuses ``update_params``,
``backward``, ``step`` and ``optim_context``: which wrapper a loss belongs to is the user's
``train_step``'s decision (``optim_wrapper["generator"].update_params(loss)``).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, NoReturn

from torch import nn

from trainer.optim.wrapper import OptimWrapper


class _NotAWrapperError(TypeError, AssertionError):
    """A value that is no ``OptimWrapper``; also an ``AssertionError``, which MMEngine raised."""


class OptimWrapperDict:
    """A read-only mapping from names to :class:`OptimWrapper`.

    Args:
        **optim_wrappers: the wrappers, keyed by name.

    Example:
        >>> import torch
        >>> gen, disc = nn.Linear(4, 4), nn.Linear(4, 1)
        >>> wrappers = OptimWrapperDict(
        ...     generator=OptimWrapper(torch.optim.Adam(gen.parameters(), lr=2e-4)),
        ...     discriminator=OptimWrapper(torch.optim.SGD(disc.parameters(), lr=0.1)))
        >>> wrappers["generator"].update_params(disc(gen(torch.randn(2, 4))).mean())
        >>> wrappers.get_lr()
        {'generator.lr': [0.0002], 'discriminator.lr': [0.1]}
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:
        if not optim_wrappers:
            raise ValueError("OptimWrapperDict needs at least one named OptimWrapper, got none")
        for name, wrapper in optim_wrappers.items():
            if not isinstance(wrapper, OptimWrapper):
                raise _NotAWrapperError(
                    f"`OptimWrapperDict` only accepts OptimWrapper instances, but "
                    f"OptimWrapperDict[{name!r}] is a {type(wrapper).__name__}; wrap an "
                    "optimizer with OptimWrapper(optimizer)"
                )
        self.optim_wrappers: dict[str, OptimWrapper] = dict(optim_wrappers)

    # -- what a single wrapper would do, refused ---------------------------------------------

    def _refuse(self, method: str) -> NoReturn:
        raise NotImplementedError(
            f"OptimWrapperDict does not know which optimizer a call to {method} is for "
            f"(`{method}` should be called by a single wrapper): call it on one of the named "
            f"wrappers instead, e.g. optim_wrapper[{self._first!r}].{method}(...) (names: "
            f"{list(self.optim_wrappers)})"
        )

    def update_params(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("update_params")

    def backward(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("backward")

    def step(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("step")

    def optim_context(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("optim_context")

    # -- what applies to all -----------------------------------------------------------------

    def zero_grad(self, **kwargs: Any) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad(**kwargs)

    def initialize_count_status(self, model: nn.Module | None, init_counts: int,
                                max_counts: int | None) -> None:
        """Start the same counting domain in every wrapper."""
        for wrapper in self.optim_wrappers.values():
            wrapper.initialize_count_status(model, init_counts, max_counts)

    def with_precision(self, precision: str, device_type: str | None = None) -> OptimWrapperDict:
        """Every wrapper converted by :meth:`OptimWrapper.with_precision`."""
        return OptimWrapperDict(**{name: w.with_precision(precision, device_type)
                                   for name, w in self.optim_wrappers.items()})

    @property
    def param_groups(self) -> dict[str, list[dict[str, Any]]]:
        """Each wrapper's ``param_groups``, by name (as MMEngine)."""
        return {name: w.param_groups for name, w in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        """``{"<name>.lr": [...]}`` for every wrapper, as MMEngine names them."""
        return {f"{name}.lr": w.get_lr()["lr"] for name, w in self.optim_wrappers.items()}

    def get_momentum(self) -> dict[str, list[float]]:
        """``{"<name>.momentum": [...]}`` for every wrapper."""
        return {f"{name}.momentum": w.get_momentum()["momentum"]
                for name, w in self.optim_wrappers.items()}

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {name: w.state_dict() for name, w in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load every wrapper's state; the names must match exactly."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict keyed by wrapper name, got "
                            f"{type(state_dict).__name__}")
        unknown = sorted(set(state_dict) - set(self.optim_wrappers))
        missing = sorted(set(self.optim_wrappers) - set(state_dict))
        if unknown or missing:
            raise ValueError(
                f"state_dict names {sorted(state_dict)} do not match the wrappers "
                f"{sorted(self.optim_wrappers)} (unknown: {unknown}, missing: {missing})"
            )
        for name, state in state_dict.items():
            self.optim_wrappers[name].load_state_dict(state)

    # -- mapping access ----------------------------------------------------------------------

    @property
    def _first(self) -> str:
        return next(iter(self.optim_wrappers))

    def __getitem__(self, name: str) -> OptimWrapper:
        try:
            return self.optim_wrappers[name]
        except KeyError:
            raise KeyError(f"no optimizer wrapper named {name!r}; names are "
                           f"{list(self.optim_wrappers)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.optim_wrappers

    def __iter__(self) -> Iterator[str]:
        return iter(self.optim_wrappers)

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def keys(self) -> KeysView[str]:
        return self.optim_wrappers.keys()

    def values(self) -> ValuesView[OptimWrapper]:
        return self.optim_wrappers.values()

    def items(self) -> ItemsView[str, OptimWrapper]:
        return self.optim_wrappers.items()

    def __repr__(self) -> str:
        body = ",\n".join(f"  name: {name}\n  {w!r}" for name, w in self.optim_wrappers.items())
        return f"OptimWrapperDict(\n{body})"
