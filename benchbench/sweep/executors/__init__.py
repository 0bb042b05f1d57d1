"""Where cells run: ``local`` (one at a time here) or ``ray`` (Ray tasks across a cluster; imported only when chosen)."""

from __future__ import annotations

from collections.abc import Sequence

from benchbench.sweep.cells import Cell
from benchbench.sweep.executors.local import LocalExecutor


def open_executor(name: str, ray_address: str | None, cells: Sequence[Cell]):
    """The executor, connected and checked against the cells, as a context manager; fails before anything runs."""
    if name == "local":
        return LocalExecutor()
    from benchbench.sweep.executors.ray import RayExecutor
    from benchbench.sweep.run import check_resources

    check_resources(list(cells))
    return RayExecutor(ray_address, cells)
