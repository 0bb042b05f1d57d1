"""Gating a sweep cell by cell: a sweep baseline holds one run snapshot per cell, and every cell of
the baseline is judged with the ordinary gate against the same cell of the sweep being gated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from benchbench.errors import BenchError
from benchbench.gate.baseline import (
    BASELINE_SCHEMA_VERSION,
    Snapshot,
    check_fit_for_baseline,
    load_baseline,
    save_baseline,
    snapshot_run,
)
from benchbench.gate.judge import DIRECT_METHOD, METHOD, GateResult, Status, Verdict, evaluate
from benchbench.gate.rules import RelativeCheck
from benchbench.results.records import MANIFEST_FILE
from benchbench.sweep.folder import cell_dir, load_record


class SweepBaseline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = BASELINE_SCHEMA_VERSION
    kind: Literal["sweep"] = "sweep"
    created_at: str
    source: str
    cells: dict[str, Snapshot]


def snapshot_sweep(sweep_dir: Path) -> dict[str, Snapshot]:
    """A gate snapshot of every cell that has a run folder (finished or not: the gate says which)."""
    record = load_record(sweep_dir)
    return {cell.id: snapshot_run(cell_dir(sweep_dir, cell.id)) for cell in record.cells
            if (cell_dir(sweep_dir, cell.id) / MANIFEST_FILE).is_file()}


def save_sweep_baseline(sweep_dir: Path, path: Path) -> SweepBaseline:
    """Every cell must have finished, fairly: a baseline with a hole would excuse the same hole later."""
    record = load_record(sweep_dir)
    unfinished = [cell.id for cell in record.cells if record.outcomes[cell.id].status != "ok"]
    if unfinished:
        raise BenchError(f"sweep {sweep_dir}: cell(s) {', '.join(unfinished)} did not finish; "
                         f"finish them with 'benchbench sweep --resume {sweep_dir}' before saving a baseline")
    cells = snapshot_sweep(sweep_dir)
    for snapshot in cells.values():
        check_fit_for_baseline(snapshot)
    baseline = SweepBaseline(created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             source=str(sweep_dir), cells=cells)
    save_baseline(baseline, path)
    return baseline


def is_sweep_baseline(path: Path) -> bool:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("kind") == "sweep"
    except (OSError, ValueError, AttributeError):
        return False


def load_sweep_baseline(path: Path) -> SweepBaseline:
    return load_baseline(path, SweepBaseline)


def evaluate_sweep(baseline: SweepBaseline, cells: dict[str, Snapshot], rules, allow_different_hardware: bool) -> GateResult:
    """Every rule for every backend of every baseline cell; verdicts are named ``<cell>/<backend>``."""
    verdicts: list[Verdict] = []
    notes: list[str] = []
    for cell_id, base in baseline.cells.items():
        current = cells.get(cell_id)
        if current is None:
            verdicts += [Verdict(cell_id, rule.text, Status.CANNOT_JUDGE, f"cell {cell_id} is in the baseline but has no run "
                                 "folder in this sweep") for rule in rules]
            continue
        result = evaluate(base, current, rules, allow_different_hardware)
        verdicts += [dataclasses.replace(v, backend=f"{cell_id}/{v.backend}") for v in result.verdicts]
        notes += [f"{cell_id}: {note}" for note in result.notes]
    notes += [f"cell {cell_id} is in the sweep but not in the baseline; not gated" for cell_id in cells if cell_id not in baseline.cells]
    method = METHOD if any(isinstance(rule, RelativeCheck) for rule in rules) else DIRECT_METHOD
    return GateResult(tuple(verdicts), tuple(notes), method)
