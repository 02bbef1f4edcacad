"""The single-process side of trainer.dist: MMEngine's helpers are cheap no-ops there."""

from __future__ import annotations

from trainer import dist


def test_master_only_runs_in_a_single_process_and_returns_the_value():
    calls = []

    @dist.master_only
    def note(value):
        """Record ``value``."""
        calls.append(value)
        return value * 2

    assert note(3) == 6 and calls == [3]
    assert note.__name__ == "note" and note.__doc__ == "Record ``value``."
    assert (dist.get_rank(), dist.get_world_size(), dist.is_main_process()) == (0, 1, True)
