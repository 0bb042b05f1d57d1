"""One row per backend of every cell (per backend and load point for a cell with a ``load`` block), read
back from the sweep folder alone: status, fairness, throughput with its interval, every metric of the
registry under its published name (as in summary.csv and gate rules), and the outputs (for agreement
across cells)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from benchbench.report.inputs import read_run
from benchbench.report.throughput import throughput
from benchbench.results import metrics
from benchbench.results.consistency import SequenceComparison, compare_records
from benchbench.results.load import by_point
from benchbench.results.records import MANIFEST_FILE, RequestRecord
from benchbench.results.stats import Interval
from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import SweepRecord, cell_dir
from benchbench.sweep.spec import Objective

SHOWN_METRICS = ("ttft_s_p50", "ttft_s_p99", "e2e_s_p50", "e2e_s_p99")
"""The latency columns of the cell table and cells.csv, by registry name."""


@dataclass(frozen=True)
class CellRow:
    cell: Cell
    outcome: CellOutcome
    backend: str
    kind: str
    status: str
    measured: int
    unfair: int
    intervals: dict[str, Interval] = field(default_factory=dict)
    """output_tok_s and req_s with their 95% intervals."""
    values: dict[str, float | None] = field(default_factory=dict)
    """every published metric of the registry over the row's measured records"""
    outputs: dict[str, RequestRecord] = field(default_factory=dict)
    """request id -> its first measured answer."""
    point: str | None = None
    """the load point of a cell with a ``load`` block: its rows are per point, never pooled"""

    @property
    def finished(self) -> bool:
        return self.status == "ok" and self.measured > 0

    @property
    def series(self) -> str:
        """The backend, as ``backend@point`` under load."""
        return metrics.at_point(self.backend, self.point) if self.point else self.backend

    @property
    def name(self) -> str:
        """``cell/backend`` (``cell/backend@point`` under load)."""
        return f"{self.cell.id}/{self.series}"

    def metric(self, name: str) -> float:
        """A metric of the objective by its registry name; NaN where the row has none."""
        value = self.values.get(name)
        return math.nan if value is None else value


def cell_rows(sweep_dir: Path, record: SweepRecord) -> list[CellRow]:
    rows = []
    for cell in record.cells:
        outcome = record.outcomes[cell.id]
        folder = cell_dir(sweep_dir, cell.id)
        if not (folder / MANIFEST_FILE).is_file():
            rows.append(CellRow(cell, outcome, "-", "-", outcome.status, 0, 0))
            continue
        run = read_run(folder)
        for backend in run.manifest.backends:
            measured = [r for r in run.records if r.backend == backend.name and r.phase == "measure"]
            points = by_point(measured) or {None: measured}
            rows += [_row(cell, outcome, backend.name, backend.kind, backend.status, group, point)
                     for point, group in points.items()]
    return rows


def _row(cell: Cell, outcome: CellOutcome, name: str, kind: str, status: str, measured: list[RequestRecord],
         point: str | None = None) -> CellRow:
    intervals: dict[str, Interval] = {}
    values: dict[str, float | None] = {}
    if measured:
        key = f"{cell.id}/" + (metrics.at_point(name, point) if point else name)
        intervals = throughput(key, measured).intervals
        values = metrics.aggregate(measured)
    outputs: dict[str, RequestRecord] = {}
    for r in sorted(measured, key=lambda r: r.repeat):
        outputs.setdefault(r.request_id, r)
    return CellRow(cell, outcome, name, kind, status, len(measured), sum(not r.fairness.ok for r in measured),
                   intervals, values, outputs, point)


@dataclass(frozen=True)
class Disagreement:
    reference: CellRow
    other: CellRow
    compared: int
    differing: dict[str, SequenceComparison]


def disagreements(rows: list[CellRow]) -> tuple[int, list[Disagreement]]:
    """Rows sharing a workload compared with the first such row, request by request (token ids when
    both have them, else text); returns how many rows had a partner, and the pairs that differ."""
    groups: dict[str, list[CellRow]] = {}
    for row in rows:
        if row.finished:
            groups.setdefault(row.cell.workload_hash, []).append(row)
    compared, found = 0, []
    for group in groups.values():
        reference = group[0]
        for other in group[1:]:
            compared += 1
            common = [rid for rid in reference.outputs if rid in other.outputs]
            differing = {}
            for rid in common:
                _, comparison = compare_records(reference.outputs[rid], other.outputs[rid])
                if not comparison.exact_match:
                    differing[rid] = comparison
            if differing:
                found.append(Disagreement(reference, other, len(common), differing))
    return compared, found


def best_per_engine(rows: list[CellRow], objective: Objective) -> dict[str, CellRow | None]:
    """Per backend kind, the fair finished row that best meets the objective (None: no row qualifies)."""
    best: dict[str, CellRow | None] = {}
    for row in rows:
        if row.kind == "-":
            continue
        best.setdefault(row.kind, None)
        if not row.finished or row.unfair or not _meets(row, objective.constraints()):
            continue
        value = row.metric(objective.metric)
        current = best[row.kind]
        if math.isnan(value):
            continue
        if current is None or _better(value, current.metric(objective.metric), objective.higher_is_better):
            best[row.kind] = row
    return best


def _better(value: float, than: float, higher_is_better: bool) -> bool:
    return value > than if higher_is_better else value < than


def _meets(row: CellRow, constraints: list[tuple[str, str, float]]) -> bool:
    checks = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
    return all(checks[op](row.metric(metric), bound) for metric, op, bound in constraints)
