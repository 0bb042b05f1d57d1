"""The sweep report (report.md, report.html, per-axis PNGs, cells.csv), rebuilt from the sweep folder alone.

Problems first (cells that did not finish, unfair cells, outputs that disagree), then every cell,
the best cell per engine under the sweep's objective, one plot per axis, and the plan.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from benchbench.report.document import Cell, Code, Document, Figure, Note, Section, Table, cells, number
from benchbench.report.render import render_html, render_markdown
from benchbench.report.writer import _generated_line
from benchbench.sweep.folder import SweepRecord, load_record
from benchbench.sweep.plots import axis_plot
from benchbench.sweep.spec import SweepSpec, stored_spec
from benchbench.results.metrics import heading
from benchbench.sweep.table import SHOWN_METRICS, CellRow, best_per_engine, cell_rows, disagreements

STATUS_TONES = {"ok": "good", "pending": "muted", "running": "warn", "interrupted": "warn"}


def write_sweep_report(sweep_dir: Path) -> Path:
    """Rebuild the sweep's report in its folder; returns report.html's path."""
    sweep_dir = Path(sweep_dir)
    record = load_record(sweep_dir)
    spec = stored_spec(record.spec)
    rows = cell_rows(sweep_dir, record)
    _write_csv(rows, sweep_dir / "cells.csv")
    sections = [_checks(record, rows), _cells(rows), _best(rows, spec), _axes(record, rows, sweep_dir), _plan(record)]
    finished = sum(record.outcomes[cell.id].status == "ok" for cell in record.cells)
    subtitle = (f"scenario {record.cells[0].scenario.get('name')} · {len(record.cells)} cells ({finished} finished) · "
                f"{len({cell.workload_hash for cell in record.cells})} distinct workloads · executor {spec.executor}")
    document = Document("benchbench sweep", subtitle, _generated_line(), sections)
    (sweep_dir / "report.md").write_text(render_markdown(document), encoding="utf-8")
    (sweep_dir / "report.html").write_text(render_html(document), encoding="utf-8")
    return sweep_dir / "report.html"


def _checks(record: SweepRecord, rows: list[CellRow]) -> Section:
    blocks: list = []
    for cell in record.cells:
        outcome = record.outcomes[cell.id]
        if outcome.status != "ok":
            blocks.append(Note(f"{cell.id}: {outcome.reason or 'not run yet'}", "bad", f"Cell {outcome.status}"))
    for row in rows:
        if row.unfair:
            blocks.append(Note(f"{row.name}: {row.unfair} of {row.measured} measured requests did not "
                               "run the planned workload; see the cell's own report", "bad", "Unfair cell"))
    compared, found = disagreements(rows)
    for pair in found:
        first_id, first = next(iter(pair.differing.items()))
        blocks.append(Note(f"{pair.other.name} vs {pair.reference.name} "
                           f"(same workload): {len(pair.differing)} of {pair.compared} requests differ; first {first_id} "
                           f"from position {first.first_divergence}", "warn", "Outputs disagree"))
    if compared and not found:
        blocks.append(Note(f"{compared} cell(s) share a workload with an earlier cell and answer every request identically",
                           "good", "Outputs agree"))
    if not blocks:
        blocks.append(Note("every cell finished, fair; no two cells share a workload to compare outputs", "good", "Checks"))
    flagged = any(block.tone == "bad" for block in blocks)
    return Section("checks", "Problems: read first" if flagged else "Checks", blocks)


def _cells(rows: list[CellRow]) -> Section:
    table = []
    loaded = any(row.point for row in rows)
    for row in rows:
        settings = ", ".join(f"{name}={value}" for name, value in row.cell.assignments.items())
        fairness = Cell(f"{row.unfair} unfair of {row.measured}", "bad") if row.unfair else Cell(f"fair ({row.measured})")
        throughput = row.intervals["output_tok_s"].format(4) if row.intervals else "n/a"
        point = [row.point or "serial"] if loaded else []
        table.append(cells(row.cell.id, settings, row.backend, *point, Cell(row.status, STATUS_TONES.get(row.status, "bad")),
                           fairness if row.measured else Cell("n/a", "muted"), throughput,
                           *(number(row.values.get(m)) for m in SHOWN_METRICS), row.cell.workload_hash[:12]))
    headers = ["cell", "settings", "backend", *(["load point"] if loaded else []), "status", "fairness",
               "output tokens/s [95% CI]", *(heading(m) for m in SHOWN_METRICS), "workload"]
    caption = ("Each cell is its own run folder (cells/<cell>/, with its own report); intervals as in a run's report. "
               "Metric names are the registry's, as in summary.csv, gate rules and the objective")
    caption += "; a cell with load points has a row per point." if loaded else "."
    return Section("cells", "Every cell", [Table(headers, table, caption)])


def _best(rows: list[CellRow], spec: SweepSpec) -> Section:
    objective = spec.objective
    table = []
    for kind, row in best_per_engine(rows, objective).items():
        if row is None:
            table.append(cells(kind, Cell("no fair finished cell meets the objective", "warn"), "", ""))
            continue
        settings = ", ".join(f"{name}={value}" for name, value in row.cell.assignments.items())
        table.append(cells(kind, row.name, settings, number(row.metric(objective.metric))))
    headers = ["engine", "best cell", "settings", objective.metric]
    return Section("best", "Best cell per engine", [Note(objective.describe(), "", "Objective"), Table(headers, table)])


def _axes(record: SweepRecord, rows: list[CellRow], sweep_dir: Path) -> Section:
    section = Section("axes", "Per axis")
    for axis in _varying_axes(record):
        figure = axis_plot(axis, rows, sweep_dir / f"axis-{_file_part(axis)}.png")
        section.blocks.append(Figure(figure, f"output tokens/s and TTFT p50 against {axis}",
                                     "One line per engine and setting of the other axes; bars are 95% intervals."))
    if not section.blocks:
        section.blocks.append(Note("no axis has two values among the cells", "muted"))
    return section


def _varying_axes(record: SweepRecord) -> list[str]:
    seen: dict[str, set[str]] = {}
    for cell in record.cells:
        for name, value in cell.assignments.items():
            seen.setdefault(name, set()).add(repr(value))
    return [name for name, values in seen.items() if len(values) > 1]


def _file_part(axis: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in axis)


def _plan(record: SweepRecord) -> Section:
    blocks: list = []
    if record.skipped:
        skipped = [cells(", ".join(f"{k}={v}" for k, v in s["combination"].items()), s["same_as"], s["reason"])
                   for s in record.skipped]
        blocks.append(Table(["combination", "same as cell", "why skipped"], skipped))
    costs = [(cell.id, record.outcomes[cell.id]) for cell in record.cells if record.outcomes[cell.id].executor_s]
    if costs:
        keys = list(costs[0][1].executor_s)
        blocks.append(Table(["cell", "node", "cell s", *keys],
                            [cells(cid, o.node, number(o.seconds), *(number(o.executor_s.get(k)) for k in keys)) for cid, o in costs],
                            "The Ray executor's own cost per cell: submit to start, packing, transfer and unpacking of the run folder."))
    blocks.append(Code(record.source, "The sweep file"))
    return Section("plan", "Plan and provenance", blocks)


def _write_csv(rows: list[CellRow], path: Path) -> None:
    loaded = any(row.point for row in rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell", "backend", *(["point"] if loaded else []), "kind", "status", "measured", "unfair",
                         "output_tok_s", "output_tok_s_low", "output_tok_s_high", "req_s", *SHOWN_METRICS, "workload_hash"])
        for row in rows:
            interval = row.intervals.get("output_tok_s")
            values = [interval.estimate, interval.low, interval.high] if interval else [math.nan] * 3
            req = row.intervals["req_s"].estimate if row.intervals else math.nan
            writer.writerow([row.cell.id, row.backend, *([row.point or ""] if loaded else []), row.kind, row.status,
                             row.measured, row.unfair, *(f"{v:.6g}" for v in values), f"{req:.6g}",
                             *(f"{row.metric(k):.6g}" for k in SHOWN_METRICS), row.cell.workload_hash])
