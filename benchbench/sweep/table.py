"""One row per backend of every cell, read back from the sweep folder alone: status, fairness,
throughput with its interval, latency percentiles, and the outputs (for agreement across cells)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from benchbench.report.inputs import read_run
from benchbench.report.throughput import throughput
from benchbench.results.consistency import SequenceComparison, compare_records
from benchbench.results.records import MANIFEST_FILE, RequestRecord
from benchbench.results import metrics
from benchbench.results.stats import Interval
from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import SweepRecord, cell_dir
from benchbench.sweep.spec import Objective

LATENCY_METRICS = {"ttft_p50_s": ("ttft_s", 50), "ttft_p99_s": ("ttft_s", 99),
                   "e2e_p50_s": ("e2e_s", 50), "e2e_p99_s": ("e2e_s", 99)}


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
    latency: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, RequestRecord] = field(default_factory=dict)
    """request id -> its first measured answer."""

    @property
    def finished(self) -> bool:
        return self.status == "ok" and self.measured > 0

    def metric(self, name: str) -> float:
        """A metric of the objective by name: throughput estimates or latency percentiles."""
        if name in self.intervals:
            return self.intervals[name].estimate
        return self.latency.get(name, math.nan)


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
            rows.append(_row(cell, outcome, backend.name, backend.kind, backend.status, measured))
    return rows


def _row(cell: Cell, outcome: CellOutcome, name: str, kind: str, status: str, measured: list[RequestRecord]) -> CellRow:
    intervals: dict[str, Interval] = {}
    latency: dict[str, float] = {}
    if measured:
        intervals = throughput(f"{cell.id}/{name}", measured).intervals
        for metric, (timing, q) in LATENCY_METRICS.items():
            latency[metric] = metrics.metric(timing).aggregate(measured, f"p{q}")
    outputs: dict[str, RequestRecord] = {}
    for r in sorted(measured, key=lambda r: r.repeat):
        outputs.setdefault(r.request_id, r)
    return CellRow(cell, outcome, name, kind, status, len(measured), sum(not r.fairness.ok for r in measured),
                   intervals, latency, outputs)


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
