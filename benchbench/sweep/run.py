"""A sweep end to end: plan it, open its executor (which checks it can run the plan), run the
unfinished cells, record each outcome in sweep.json as it arrives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import SweepRecord, save_record, set_aside
from benchbench.sweep.matrix import Plan
from benchbench.sweep.spec import SweepError

REPORTS_ROOT = Path("reports")


def default_sweep_dir(sweep_file: Path) -> Path:
    return REPORTS_ROOT / f"sweep-{Path(sweep_file).stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def describe_plan(plan: Plan, executor: str) -> list[str]:
    """The plan as printed before anything runs: each cell, what was skipped and why, the size."""
    lines = [f"{'cell':<40} {'gpus':>4}  workload      settings"]
    for cell in plan.cells:
        settings = ", ".join(f"{name}={value}" for name, value in cell.assignments.items())
        gpus = "?" if cell.gpus is None else str(cell.gpus)
        lines.append(f"{cell.id:<40} {gpus:>4}  {cell.workload_hash[:12]}  {settings}")
    for skipped in plan.skipped:
        combination = ", ".join(f"{name}={value}" for name, value in skipped.combination.items())
        lines.append(f"skipped {combination}: {skipped.reason} (same as cell {skipped.same_as})")
    workloads = len({cell.workload_hash for cell in plan.cells})
    lines.append(f"{len(plan.cells)} cell(s), {len(plan.skipped)} combination(s) skipped, "
                 f"{workloads} distinct workload(s), executor {executor}")
    return lines


def check_resources(cells: list[Cell]) -> None:
    """Ray must reserve a known number of GPUs per cell."""
    for cell in cells:
        if cell.gpus is None:
            raise SweepError(f"sweep cell {cell.id}: its Transformers placement spans an unknown number of GPUs; "
                             "say how many with 'resources: {gpus: N}' in the sweep file")


def run_cells(sweep_dir: Path, record: SweepRecord, executor, echo: Callable[[str], None]) -> SweepRecord:
    """Run every unfinished cell through the executor; a failed cell is recorded and the sweep goes on."""
    cells = record.unfinished()
    for cell in cells:
        set_aside(sweep_dir, cell.id)

    def on_start(cell: Cell) -> None:
        outcome = record.outcomes[cell.id]
        record.outcomes[cell.id] = outcome.model_copy(update={"status": "running", "attempts": outcome.attempts + 1})
        save_record(sweep_dir, record)

    def on_finish(cell: Cell, outcome: CellOutcome) -> None:
        record.outcomes[cell.id] = outcome.model_copy(update={"attempts": max(1, record.outcomes[cell.id].attempts)})
        save_record(sweep_dir, record)
        reason = f": {outcome.reason}" if outcome.reason else ""
        echo(f"cell {cell.id} {outcome.status} ({outcome.seconds or 0:.1f} s on {outcome.node or '?'}){reason}")

    executor.run(cells, sweep_dir, on_start, on_finish)
    return record
