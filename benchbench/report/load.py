"""The report's load section: per engine and load point, what it achieved and at what latency;
the headline is the highest request rate each engine sustains within the SLO, with the ratio
between engines; curves show where each engine's latency turns up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchbench.report import load_plots
from benchbench.report.document import Cell, Figure, Note, Section, Table, cells, number
from benchbench.report.inputs import ReportInput
from benchbench.results.load import PointSummary, by_point, summarize_point, sustained
from benchbench.results.metrics import RequestMetric, heading, resolve
from benchbench.results.stats import MIN_REPEATS, bootstrap_mean_ci, bootstrap_ratio_ci


def load_points(data: ReportInput) -> dict[str, list[PointSummary]]:
    """Per backend, its points in run order, each summarised by the metric registry."""
    slo = data.runs[0].manifest.scenario.get("slo") or {}
    limit = (data.runs[0].manifest.scenario.get("load") or {}).get("max_error_rate", 0.1)
    result: dict[str, list[PointSummary]] = {}
    for view in data.backends:
        groups = by_point(data.measured(view.key))
        if groups:
            result[view.key] = [summarize_point(records, slo.get("ttft_p99_s"), slo.get("tpot_p99_s"), limit)
                                for records in groups.values()]
    return result


def load_section(data: ReportInput, out_dir: Path) -> Section | None:
    points = load_points(data)
    if not points:
        return None
    section = Section("load", "Load: the highest rate each engine sustains within the SLO")
    section.blocks += _headline(data, points)
    section.blocks.append(_capacity_table(data))
    for view in data.backends:
        if view.key in points:
            section.blocks.append(_point_table(view.label, points[view.key]))
    limited = sorted({f"{data.label(key)} {s.point}" for key, rows in points.items() for s in rows if s.client_limited})
    if limited:
        section.blocks.append(Note(f"client-limited (lag p99 > 1 ms or sent below the target rate): {', '.join(limited)}; "
                                   "these points describe the load client, not the engine", "warn", "Client-limited"))  # fmt: skip
    labels = {view.key: view.label for view in data.backends}
    for path, alt in load_plots.load_figures(points, labels, out_dir):
        section.blocks.append(Figure(path, alt))
    return section


def _headline(data: ReportInput, points: dict[str, list[PointSummary]]) -> list[Note | Table]:
    if not data.runs[0].manifest.scenario.get("slo"):
        return [Note("the scenario states no SLO (slo: {ttft_p99_s, tpot_p99_s}), so no point is judged; "
                     "the tables show every point", "warn", "No SLO")]  # fmt: skip
    best = {key: sustained(rows) for key, rows in points.items()}
    reference = next((key for key in best if best[key] is not None), None)
    rows, notes = [], []
    for view in data.backends:
        if view.key not in best:
            continue
        found = best[view.key]
        if found is None:
            rows.append(cells(view.label, Cell("no point within the SLO", "bad"), "", ""))
            continue
        summary, rates = found, _rates(found)
        enough = len(rates) >= MIN_REPEATS
        rate = bootstrap_mean_ci(rates).format(4) if enough else \
            f"{number(summary.achieved_req_s)} ({len(rates)} repeat(s): no interval, {MIN_REPEATS} needed)"
        ratio = ""
        if view.key != reference and enough and len(_rates(best[reference])) >= MIN_REPEATS:
            ratio = bootstrap_ratio_ci(_rates(best[reference]), rates).format(suffix="x")
        elif view.key != reference:
            ratio = f"{summary.achieved_req_s / best[reference].achieved_req_s:.3g}x (no interval)"
        rows.append(cells(view.label, summary.point, rate, ratio or Cell("reference", "muted")))
        notes.append(f"{view.label}: {number(summary.achieved_req_s)} req/s at {summary.point}")
    headers = ["backend", "highest point within the SLO", "requests/s there [95% CI over repeats]",
               f"vs {data.label(reference) if reference else 'reference'}"]  # fmt: skip
    return [Note("; ".join(notes) or "no engine met the SLO at any point", "good" if notes else "bad", "Sustained rate"),
            Table(headers, rows, "Within the SLO: p99 TTFT and p99 TPOT under the thresholds and errors under the limit.")]


def _rates(summary: PointSummary) -> list[float]:
    """The point's requests/s, one per repeat: the samples a baseline keeps and the gate compares."""
    return summary.samples.get("req_s", [])


def _capacity_table(data: ReportInput) -> Table:
    rows = []
    for view in data.backends:
        concurrency = view.outcome.load_info.get("concurrency") or {}
        rows.append(cells(view.label, concurrency.get("batching", "n/a"), concurrency.get("max_in_flight", "n/a") or "server decides"))
    return Table(["backend", "batching", "requests in flight at most"], rows, "How each engine serves concurrent requests.")


POINT_COLUMNS = ("req_s", "output_tok_s", "ttft_s_p50", "ttft_s_p99", "tpot_s_p50", "tpot_s_p99", "error_rate",
                 "goodput_req_s", "lag_s_p99")
"""The point table's metrics, by registry name (the ``NAME@POINT`` a gate rule uses)."""


def _point_table(label: str, summaries: Sequence[PointSummary]) -> Table:
    rows = []
    for s in summaries:
        slo_cell = Cell("n/a", "muted") if s.within_slo is None else Cell("yes", "good") if s.within_slo else Cell("no", "bad")
        shown = [_shown(name, s.metrics[name]) for name in POINT_COLUMNS]
        rows.append(cells(s.point, s.requests, *shown, slo_cell, Cell("yes", "warn") if s.client_limited else "no"))
    headers = ["point", "requests", *(_header(name) for name in POINT_COLUMNS), "within SLO", "client-limited"]
    return Table(headers, rows, f"{label}: rates over each repeat's wall span, averaged over repeats; TTFT counts the "
                                "wait for the engine. Gate rules name a cell as NAME@POINT (ttft_s_p99@rate=4).")


def _header(name: str) -> str:
    entry, stat = resolve(name)
    return heading(name) if stat else entry.label


def _shown(name: str, value: float | None) -> str:
    entry, _ = resolve(name)
    if value is not None and name == "error_rate":
        return f"{value:.1%}"
    if value is not None and isinstance(entry, RequestMetric):
        value = entry.shown(value)
    return number(value, 4)
