"""The local executor: one cell at a time on this machine, each in a process of its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import cell_dir
from benchbench.sweep.run_cell import run_cell


class LocalExecutor:
    name = "local"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def run(self, cells: Sequence[Cell], sweep_dir: Path, on_start: Callable[[Cell], None],
            on_finish: Callable[[Cell, CellOutcome], None]) -> None:
        """Each cell in turn; Ctrl-C stops the cell under way (marked interrupted) and propagates."""
        for cell in cells:
            on_start(cell)
            try:
                outcome = run_cell(cell, cell_dir(sweep_dir, cell.id))
            except KeyboardInterrupt:
                on_finish(cell, CellOutcome(status="interrupted", reason="interrupted (Ctrl-C or SIGTERM)"))
                raise
            on_finish(cell, outcome.model_copy(update={"node": "local"}))
