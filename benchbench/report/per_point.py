"""A load run's general sections (headline, latency, turns, tile and option sweeps) compare engines
at each load point, never across points: requests at concurrency 1 pooled with those at 8 would
describe neither. The same section builders read a view per backend and point (``backend@point``),
and the headline compares engines point by point against the reference engine at that point.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchbench.report import plots
from benchbench.report.document import Cell, Figure, Note, Section, Table
from benchbench.report.inputs import PALETTE, BackendView, ReportInput
from benchbench.report.performance import basis_caption, headline_headers, headline_rows, small_sample_warning, verdict_lines
from benchbench.report.throughput import Throughput
from benchbench.results.load import by_point
from benchbench.results.metrics import at_point
from benchbench.results.records import RequestRecord

SERIAL = "serial"
DEFERS = ("this run has load points, so engines are compared at each point, never across points; the highest "
          "rate each engine sustains within the SLO is the headline of the load section above")


def per_point(data: ReportInput) -> ReportInput:
    """The run with one view per backend and load point, points in run order and the engines side by
    side at each; only measured records (what the general sections read), relabelled ``backend@point``."""
    groups = {view.key: _points(data.measured(view.key)) for view in data.backends}
    points = list(dict.fromkeys(point for own in groups.values() for point in own))
    views, records = [], []
    for point in points:
        for view in data.backends:
            if point in groups[view.key]:
                key = at_point(view.key, point)
                views.append(replace(view, key=key, colour=PALETTE[len(views) % len(PALETTE)], point=point))
                records += [r.model_copy(update={"backend": key}) for r in groups[view.key][point]]
    return ReportInput(data.runs, views, records, _reference(data, views, points[0] if points else None))


def _points(measured: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    """A backend's records per load point; a serial run's (in a comparison with a load run) at ``serial``,
    the name a load sweep gives its one-at-a-time point."""
    return by_point(measured) or ({SERIAL: measured} if measured else {})


def _reference(data: ReportInput, views: list[BackendView], point: str | None) -> BackendView | None:
    """The run's reference engine at ``point``, else the first engine measured there."""
    at = [view for view in views if view.point == point]
    wanted = at_point(data.reference.key, point) if data.reference and point else None
    return next((view for view in at if view.key == wanted), at[0] if at else None)


def _at_each_point(pointed: ReportInput, data: ReportInput) -> list[ReportInput]:
    """Per load point, the views measured there with the reference engine at that point."""
    points = dict.fromkeys(view.point for view in pointed.backends)
    return [ReportInput(pointed.runs, [view for view in pointed.backends if view.point == point], pointed.records,
                        _reference(data, pointed.backends, point)) for point in points]


def load_headline_section(data: ReportInput, pointed: ReportInput, results: dict[str, Throughput], out_dir: Path) -> Section:
    """Throughput per engine at each point, with the ratio to the reference engine at the same point."""
    section = Section("headline", "Headline: who is faster", [Note(DEFERS, "", "Per load point")])
    if not results:
        section.blocks.append(Note("no backend finished any measured request", "bad", "No measurements"))
        return section
    rows: list[list[Cell]] = []
    for at in _at_each_point(pointed, data):
        own = {view.key: results[view.key] for view in at.backends if view.key in results}
        if not own or at.reference is None:
            continue
        section.blocks += verdict_lines(at, own, differences=not rows)  # what differs is the same at every point
        rows += headline_rows(at, own)
    section.blocks += [Note(f"{view.label}: no measured request at any load point ({view.outcome.status})", "bad",
                            "No measurements") for view in data.backends if not data.measured(view.key)]
    reference = data.reference.label if data.reference else "the first engine"
    headers = headline_headers("backend@point", f"{reference} at the same point")
    section.blocks.append(Table(headers, rows, basis_caption(results)))
    section.blocks += small_sample_warning(results)
    figure = plots.throughput_plot(pointed.backends, results, out_dir / "throughput.png")
    section.blocks.append(Figure(figure, "Throughput per backend and load point with 95% confidence intervals"))
    return section
