"""The report's load section: per engine and load point, what it achieved and at what latency;
the headline is the highest request rate each engine sustains within the SLO, with the ratio
between engines; curves show where each engine's latency turns up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchbench.report import load_plots
from benchbench.report.document import Cell, Figure, Note, Section, Table, cells, number
from benchbench.report.inputs import ReportInput
from benchbench.results.load import PointSummary, point_request, summarize_point, sustained
from benchbench.results.records import RequestRecord
from benchbench.results.stats import bootstrap_mean_ci, bootstrap_ratio_ci


def load_points(data: ReportInput) -> dict[str, list[tuple[PointSummary, list[float]]]]:
    """Per backend, its points in run order: the pooled summary and each repeat's achieved req/s."""
    slo = data.runs[0].manifest.scenario.get("slo") or {}
    limit = (data.runs[0].manifest.scenario.get("load") or {}).get("max_error_rate", 0.1)
    result: dict[str, list[tuple[PointSummary, list[float]]]] = {}
    for view in data.backends:
        groups: dict[str, list[RequestRecord]] = defaultdict(list)
        for record in data.measured(view.key):
            if record.load is not None:
                groups[record.load.point].append(record)
        if groups:
            result[view.key] = [_point(records, slo, limit) for records in groups.values()]
    return result


def _point(records: list[RequestRecord], slo: dict, limit: float) -> tuple[PointSummary, list[float]]:
    summary = summarize_point([point_request(r) for r in records], slo.get("ttft_p99_s"), slo.get("tpot_p99_s"), limit)
    by_repeat: dict[int, list[RequestRecord]] = defaultdict(list)
    for record in records:
        by_repeat[record.repeat].append(record)
    rates = [summarize_point([point_request(r) for r in group]).achieved_req_s for group in by_repeat.values()]
    return summary, rates


def load_section(data: ReportInput, out_dir: Path) -> Section | None:
    points = load_points(data)
    if not points:
        return None
    section = Section("load", "Load: the highest rate each engine sustains within the SLO")
    section.blocks += _headline(data, points)
    section.blocks.append(_capacity_table(data))
    for view in data.backends:
        if view.key in points:
            section.blocks.append(_point_table(view.label, [summary for summary, _ in points[view.key]]))
    limited = sorted({f"{data.label(key)} {s.point}" for key, rows in points.items() for s, _ in rows if s.client_limited})
    if limited:
        section.blocks.append(Note(f"client-limited (lag p99 > 1 ms or sent below the target rate): {', '.join(limited)}; "
                                   "these points describe the load client, not the engine", "warn", "Client-limited"))  # fmt: skip
    labels = {view.key: view.label for view in data.backends}
    summaries = {key: [summary for summary, _ in rows] for key, rows in points.items()}
    for path, alt in load_plots.load_figures(summaries, labels, out_dir):
        section.blocks.append(Figure(path, alt))
    return section


def _headline(data: ReportInput, points: dict[str, list[tuple[PointSummary, list[float]]]]) -> list[Note | Table]:
    if not data.runs[0].manifest.scenario.get("slo"):
        return [Note("the scenario states no SLO (slo: {ttft_p99_s, tpot_p99_s}), so no point is judged; "
                     "the tables show every point", "warn", "No SLO")]  # fmt: skip
    best = {key: _best(rows) for key, rows in points.items()}
    reference = next((key for key in best if best[key] is not None), None)
    rows, notes = [], []
    for view in data.backends:
        if view.key not in best:
            continue
        found = best[view.key]
        if found is None:
            rows.append(cells(view.label, Cell("no point within the SLO", "bad"), "", ""))
            continue
        summary, rates = found
        rate = bootstrap_mean_ci(rates).format(4) if len(rates) > 1 else f"{number(summary.achieved_req_s)} (one repeat: no interval)"
        ratio = ""
        if view.key != reference and len(rates) > 1 and len(best[reference][1]) > 1:
            ratio = bootstrap_ratio_ci(best[reference][1], rates).format(suffix="x")
        elif view.key != reference:
            ratio = f"{summary.achieved_req_s / best[reference][0].achieved_req_s:.3g}x (no interval)"
        rows.append(cells(view.label, summary.point, rate, ratio or Cell("reference", "muted")))
        notes.append(f"{view.label}: {number(summary.achieved_req_s)} req/s at {summary.point}")
    headers = ["backend", "highest point within the SLO", "requests/s there [95% CI over repeats]",
               f"vs {data.label(reference) if reference else 'reference'}"]  # fmt: skip
    return [Note("; ".join(notes) or "no engine met the SLO at any point", "good" if notes else "bad", "Sustained rate"),
            Table(headers, rows, "Within the SLO: p99 TTFT and p99 TPOT under the thresholds and errors under the limit.")]


def _best(rows: Sequence[tuple[PointSummary, list[float]]]) -> tuple[PointSummary, list[float]] | None:
    top = sustained([summary for summary, _ in rows])
    return next((row for row in rows if row[0] is top), None) if top else None


def _capacity_table(data: ReportInput) -> Table:
    rows = []
    for view in data.backends:
        concurrency = view.outcome.load_info.get("concurrency") or {}
        rows.append(cells(view.label, concurrency.get("batching", "n/a"), concurrency.get("max_in_flight", "n/a") or "server decides"))
    return Table(["backend", "batching", "requests in flight at most"], rows, "How each engine serves concurrent requests.")


def _point_table(label: str, summaries: Sequence[PointSummary]) -> Table:
    rows = []
    for s in summaries:
        slo_cell = Cell("n/a", "muted") if s.within_slo is None else Cell("yes", "good") if s.within_slo else Cell("no", "bad")
        rows.append(cells(
            s.point, s.requests, number(s.achieved_req_s), number(s.output_tok_s), _ms(s.ttft_p50_s), _ms(s.ttft_p99_s),
            _ms(s.tpot_p50_s), _ms(s.tpot_p99_s), f"{s.error_rate:.1%}", number(s.goodput_req_s), _ms(s.lag_p99_s, 3),
            slo_cell, Cell("yes", "warn") if s.client_limited else "no",
        ))  # fmt: skip
    headers = ["point", "requests", "req/s", "output tok/s", "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms",
               "errors", "goodput req/s", "lag p99 ms", "within SLO", "client-limited"]  # fmt: skip
    return Table(headers, rows, f"{label}: rates over each point's wall span; TTFT counts the wait for the engine.")


def _ms(value: float | None, digits: int = 4) -> str:
    return number(None if value is None else value * 1e3, digits)
