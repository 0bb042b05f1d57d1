"""Speed sections: the headline (throughput with intervals, speed vs the reference), latency, tile sweeps."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from benchbench.report import plots
from benchbench.report.differences import describe_differences
from benchbench.report.document import Block, Cell, Figure, Note, Section, Table, cells, number
from benchbench.report.inputs import BackendView, ReportInput
from benchbench.report.throughput import QUARTILES, Throughput, relative, sweep_points, throughput, verdict
from benchbench.results import metrics
from benchbench.results.records import RequestRecord
from benchbench.results.stats import SMALL_SAMPLE

VERDICT_TONES = {"not distinguishable": "muted", "no interval": "muted"}


def throughputs(data: ReportInput) -> dict[str, Throughput]:
    return {view.key: throughput(view.key, data.measured(view.key)) for view in data.backends if data.measured(view.key)}


def headline_section(data: ReportInput, results: dict[str, Throughput], out_dir: Path) -> Section:
    section = Section("headline", "Headline: who is faster")
    if not results:
        section.blocks.append(Note("no backend finished any measured request", "bad", "No measurements"))
        return section
    section.blocks += verdict_lines(data, results)
    section.blocks.append(Table(headline_headers("backend", data.reference.label), headline_rows(data, results),
                                basis_caption(results)))
    section.blocks += small_sample_warning(results)
    figure = plots.throughput_plot(data.backends, results, out_dir / "throughput.png")
    section.blocks.append(Figure(figure, "Throughput per backend with 95% confidence intervals"))
    return section


def headline_headers(first: str, versus: str) -> list[str]:
    return [first, "requests/s [95% CI]", "output tokens/s [95% CI]", f"output tokens/s vs {versus}", "verdict",
            "CI over", "samples"]


def headline_rows(data: ReportInput, results: dict[str, Throughput]) -> list[list[Cell]]:
    """Per backend: its rates with intervals and its ratio to the reference (which must have results)."""
    reference = data.reference
    ref = results[reference.key]
    rows = []
    for view in data.backends:
        if view.key not in results:
            rows.append(cells(view.label, Cell(f"no measurements ({view.outcome.status})", "bad"), "", "", "", "", ""))
            continue
        result = results[view.key]
        if view is reference:
            ratio_cell, verdict_cell = Cell("1x (reference)", "muted"), Cell("reference", "muted")
        else:
            ratio = relative(result, ref)
            ratio_cell, verdict_cell = Cell(ratio.format(suffix="x")), Cell(verdict(ratio), VERDICT_TONES.get(verdict(ratio), ""))
        unfair = sum(1 for r in data.measured(view.key) if not r.fairness.ok)
        name = Cell(f"{view.label} ({unfair} unfair request(s), see Problems)", "bad") if unfair else Cell(view.label)
        rows.append(cells(name, result.intervals["req_s"].format(4), result.intervals["output_tok_s"].format(4),
                          ratio_cell, verdict_cell, result.basis, result.samples))
    return rows


def verdict_lines(data: ReportInput, results: dict[str, Throughput], differences: bool = True) -> list[Block]:
    reference = data.reference
    ref = results[reference.key]
    fastest = max(results, key=lambda key: results[key].intervals["output_tok_s"].estimate)
    lines: list[Block] = [Note(f"{data.label(fastest)} at {results[fastest].intervals['output_tok_s'].format(4)} "
                               "output tokens/s (95% CI)", "", "Fastest")]
    for view in data.backends:
        if view.key in results and view is not reference:
            ratio = relative(results[view.key], ref)
            word = verdict(ratio)
            lines.append(Note(f"{view.label} {ratio.format(suffix='x')} vs {reference.label} ({word})",
                              VERDICT_TONES.get(word, ""), "Relative speed"))
            if differences:
                lines.append(Note(describe_differences(reference, view), "muted", "What differs"))
    return lines


def basis_caption(results: dict[str, Throughput]) -> str:
    bases = {result.basis for result in results.values()}
    parts = []
    if "repeats" in bases:
        parts.append("over repeats: each repeat's throughput is its requests (or output tokens) over the wall time "
                     "from its first request's start to its last request's end; the estimate is their mean")
    if "requests" in bases:
        parts.append("over requests (a single repeat): requests are resampled and their busy-time rate scaled to "
                     "the repeat's wall-clock throughput")
    return ("95% bootstrap-t (studentized) confidence intervals, seeded so a rebuild gives the same numbers; "
            + "; ".join(parts) + ". A ratio interval that contains 1x means no distinguishable difference.")


def small_sample_warning(results: dict[str, Throughput]) -> list[Block]:
    few = sorted({result.samples for result in results.values() if result.basis == "repeats" and result.samples < SMALL_SAMPLE})
    if not few:
        return []
    return [Note(f"intervals over only {', '.join(map(str, few))} repeat(s): with this few samples a bootstrap "
                 f"interval is unreliable (its coverage is established from {SMALL_SAMPLE} samples up, "
                 f"benchmarks/bootstrap_coverage.py). Run --repeats {SMALL_SAMPLE} or more for a firm claim.", "warn",
                 "Few repeats")]


INTER_CHUNK = ("inter_chunk_s_p50", "inter_chunk_s_p99")
LATENCY_COLUMNS = (
    ("preprocess_s_mean",),
    ("ttft_s_p50", "ttft_s_p90", "ttft_s_p99"),
    ("decode_tok_s_p50",),
    ("inter_token_s_p50", "inter_token_s_p99"),
    INTER_CHUNK,
    ("tpot_s_p50", "tpot_s_p90", "tpot_s_p99"),
    ("e2e_s_p50", "e2e_s_p90", "e2e_s_p99"),
)
"""The latency table's columns, as the registry's published names."""
PREPROCESSING_INSIDE = {"preprocess_s": " (client side only)", "ttft_s": " incl. preprocessing"}
"""What a column means for an engine that preprocesses images itself."""


def latency_section(data: ReportInput, out_dir: Path) -> Section:
    measured = {view.key: data.measured(view.key) for view in data.backends}
    columns = _latency_columns(list(measured.values()))
    loaded = any(view.point for view in data.backends)
    headers = ["backend@point" if loaded else "backend", *(metrics.heading(*names) for names in columns)]
    rows = []
    for view in data.backends:
        records = measured[view.key]
        if not records:
            continue
        inside = any(r.preprocess_in_ttft for r in records)
        notes = [PREPROCESSING_INSIDE.get(metrics.resolve(names[0])[0].name, "") if inside else "" for names in columns]
        rows.append(cells(view.label, *(_values(records, names, note) for names, note in zip(columns, notes))))
    section = Section("latency", "Latency")
    if not rows:
        section.blocks.append(Note("no measured requests", "muted"))
        return section
    caption = ("Percentiles over measured requests" + (" at each load point, never pooled across points" if loaded else "")
               + ". TTFT runs from submitting the prepared request to the first "
               "token; for engines that preprocess images themselves it includes that preprocessing. TPOT is the "
               "time per output token after the first (TTFT excluded).")
    if INTER_CHUNK in columns:
        caption += (" Inter-chunk is the gap between streamed chunks of a stream that does not say how many tokens "
                    "each chunk carried: its inter-token times and decode speed are unknown, not guessed.")
    section.blocks.append(Table(headers, rows, caption))
    section.blocks.append(Figure(plots.latency_breakdown_plot(data.backends, measured, out_dir / "latency_breakdown.png"),
                                 "Mean latency per request split into preprocessing, TTFT, decode"))
    section.blocks.append(Figure(plots.latency_cdf_plot(data.backends, measured, out_dir / "latency_cdf.png"),
                                 "Cumulative distributions of TTFT and end-to-end latency"))
    return section


def _latency_columns(measured: list[list[RequestRecord]]) -> list[tuple[str, ...]]:
    """LATENCY_COLUMNS, inter-chunk only where a backend has it: only a stream that does not say how
    many tokens each chunk carried has inter-chunk times (and then no per-token ones)."""
    chunked = any(metrics.shown_values(records, *INTER_CHUNK) is not None for records in measured)
    return [names for names in LATENCY_COLUMNS if names != INTER_CHUNK or chunked]


def _values(records: list[RequestRecord], names: tuple[str, ...], note: str = "") -> str:
    """``0.1 / 0.2 / 0.3`` for one metric's published statistics, or ``not measured``."""
    shown = metrics.shown_values(records, *names)
    return "not measured" if shown is None else " / ".join(number(v) for v in shown) + note


TURN_COLUMNS = (("ttft_s_p50", "ttft_s_p90"), ("e2e_s_p50",))


def turns_section(data: ReportInput) -> Section | None:
    """TTFT per conversation turn (multi-turn): later turns resend the same image."""
    rows = []
    for view in data.backends:
        records = data.measured(view.key)
        turns = sorted({r.turn for r in records})
        if len(turns) < 2:
            continue
        for turn in turns:
            group = [r for r in records if r.turn == turn]
            inputs = [r.input_tokens for r in group if r.input_tokens is not None]
            rows.append(cells(view.label, turn, len(group), number(sum(inputs) / len(inputs)) if inputs else "n/a",
                              *(_values(group, names) for names in TURN_COLUMNS)))
    if not rows:
        return None
    caption = ("A later turn carries the earlier turns (and their image) again, so its prompt is longer; an engine "
               "with an image-embedding cache (LightLLM) answers it with the cache warm, which shows as a TTFT "
               "that grows less than the prompt.")
    headers = ["backend", "turn", "requests", "input tokens (mean)", *(metrics.heading(*names) for names in TURN_COLUMNS)]
    return Section("turns", "Conversation turns", [Table(headers, rows, caption)])


def sweep_section(data: ReportInput, out_dir: Path) -> Section | None:
    """Throughput and TTFT per tile budget, when a backend ran several budgets (tiles-sweep)."""
    points = {view.key: sweep_points(view.key, data.measured(view.key)) for view in data.backends}
    points = {key: series for key, series in points.items() if series}
    if not points:
        return None
    headers = ["backend", "max tiles", "tiles planned (mean)", "image tokens (mean)", "requests",
               "output tokens/s [95% CI]", "TTFT p50 (s)", "end-to-end p50 (s)"]
    rows = [cells(data.label(key), p.max_tiles, number(p.tiles_planned_mean, 3), number(p.image_tokens_mean, 4),
                  p.requests, p.output_tok_s.format(4), number(p.ttft_s["p50"]), number(p.e2e_s_p50))
            for key, series in points.items() for p in series]
    caption = ("Budgets are interleaved request by request, so throughput here is output tokens over the requests' "
               "own end-to-end time (busy time), with a bootstrap interval over requests.")
    figure = plots.sweep_plot(data.backends, points, out_dir / "tiles_sweep.png")
    return Section("sweep", "Tile sweep", [Table(headers, rows, caption), Figure(figure, "Throughput and TTFT against tile count")])


def option_axes(views: list[BackendView]) -> list[tuple[str, list[BackendView]]]:
    """Backends of one kind in one run whose options differ in exactly one numeric setting (tp, ...),
    ordered by that setting: a sweep over it."""
    groups: dict[tuple[str, str, str | None], list[BackendView]] = defaultdict(list)
    for view in views:
        groups[(view.run.label, view.outcome.kind, view.point)].append(view)  # under load, per point
    axes = []
    for members in groups.values():
        options = [view.outcome.options for view in members]
        if len(members) < 2 or any(set(o) != set(options[0]) for o in options):
            continue
        differing = [key for key in sorted(options[0]) if len({json.dumps(o[key]) for o in options}) > 1]
        if len(differing) == 1 and all(_numeric(o[differing[0]]) for o in options):
            key = differing[0]
            axes.append((key, sorted(members, key=lambda view: view.outcome.options[key])))
    return axes


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def option_sweep_sections(data: ReportInput, results: dict[str, Throughput], out_dir: Path) -> list[Section]:
    """Throughput and TTFT against a backend setting that is the only difference between backends."""
    sections = []
    measured_views = [view for view in data.backends if view.key in results]
    for index, (key, members) in enumerate(option_axes(measured_views)):
        ttft_metric = metrics.metric("ttft_s")
        ttft = {view.key: {stat: ttft_metric.aggregate(data.measured(view.key), stat) for stat in QUARTILES}
                for view in members}
        rows = [cells(view.label, view.outcome.options[key], results[view.key].intervals["req_s"].format(4),
                      results[view.key].intervals["output_tok_s"].format(4), number(ttft[view.key]["p50"]))
                for view in members]
        headers = ["backend", key, "requests/s [95% CI]", "output tokens/s [95% CI]", "TTFT p50 (s)"]
        path = plots.option_sweep_plot(key, members, results, ttft, out_dir / f"sweep_{index + 1}.png")
        at = f" at {members[0].point}" if members[0].point else ""
        sections.append(Section(f"sweep-{index + 1}", f"Sweep over {key}{at}", [
            Table(headers, rows, f"Backends of kind {members[0].outcome.kind} that differ only in option '{key}'."),
            Figure(path, f"Throughput and TTFT against {key}"),
        ]))
    return sections
