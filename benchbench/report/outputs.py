"""Output consistency: every pair of backends compared request by request, a heatmap, and diffs."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import numpy as np

from benchbench.results.consistency import RequestConsistency, common_prefix, compare_backends, repeat_stability
from benchbench.report import plots
from benchbench.report.differences import explain_consistency
from benchbench.report.document import Block, Cell, Figure, Note, Section, Side, SideBySide, Table, cells, number
from benchbench.report.inputs import BackendView, ReportInput

ROWS_PER_PAIR = 20
DIFFS_PER_PAIR = 3
CONTEXT_BEFORE = 160
SHOWN_AFTER = 400
TOKEN_WINDOW = 4
CSV_NAME = "consistency.csv"


def backend_pairs(data: ReportInput) -> dict[tuple[str, str], list[RequestConsistency]]:
    """Every pair of backends with measurements that ran the same workload, compared request by request."""
    views = [view for view in data.backends if data.measured(view.key)]
    return {(a.key, b.key): compare_backends(data.records, a.key, b.key)
            for a, b in itertools.combinations(views, 2)
            if a.run.manifest.workload_hash == b.run.manifest.workload_hash}


def outputs_section(data: ReportInput, out_dir: Path) -> Section:
    section = Section("consistency", "Output consistency")
    views = [view for view in data.backends if data.measured(view.key)]
    pairs = backend_pairs(data)
    stability = {view.key: repeat_stability(data.records, view.key) for view in views}
    _write_csv(out_dir / CSV_NAME, data, pairs)
    if len(views) < 2:
        section.blocks.append(Note("only one backend has measured requests; nothing to compare it with", "muted"))
    elif len(pairs) < len(views) * (len(views) - 1) // 2:
        section.blocks.append(Note("backends from runs with different workloads are not compared: their requests differ",
                                   "warn", "Not compared"))
    if pairs:
        section.blocks.append(_pair_summary(data, pairs))
        views_by_key = {view.key: view for view in views}
        section.blocks += [Note(explain_consistency(views_by_key[a], views_by_key[b], results), "muted", "Why")
                           for (a, b), results in pairs.items()]
    section.blocks += _stability_table(data, stability)
    if len(views) >= 2 or any(stability.values()):
        matrix = _agreement_matrix(views, pairs, stability)
        section.blocks.append(Figure(plots.agreement_heatmap(views, matrix, out_dir / "agreement.png"),
                                     "Pairwise output agreement heatmap"))
    for (a, b), results in pairs.items():
        section.blocks += _pair_details(data.label(a), data.label(b), results)
    return section


def _pair_summary(data: ReportInput, pairs: dict[tuple[str, str], list[RequestConsistency]]) -> Table:
    rows = []
    for (a, b), results in pairs.items():
        if not results:
            rows.append(cells(f"{data.label(a)} vs {data.label(b)}", "", 0, Cell("no common requests", "muted"), "", "", ""))
            continue
        identical = sum(r.comparison.exact_match for r in results)
        divergences = [r.comparison.first_divergence for r in results if r.comparison.first_divergence is not None]
        rows.append(cells(
            f"{data.label(a)} vs {data.label(b)}",
            _basis(results),
            len(results),
            Cell(f"{identical} / {len(results)}", "good" if identical == len(results) else "warn"),
            f"{np.mean([r.comparison.agreement for r in results]):.1%}",
            number(float(np.mean([r.comparison.edit_distance for r in results])), 3),
            min(divergences) if divergences else "none",
        ))
    headers = ["pair", "compared over", "requests", "identical", "mean agreement", "mean edit distance (normalised)",
               "earliest first divergence"]
    caption = ("Each request compared at the first repeat both backends answered. Agreement: share of positions holding "
               "the same token (or character) up to the longer output; edit distance: Levenshtein over the longer "
               "length (0 identical, 1 nothing shared). Positions count from 0.")
    return Table(headers, rows, caption)


def _basis(results: list[RequestConsistency]) -> str:
    bases = sorted({r.basis for r in results})
    return " and ".join("token ids" if basis == "tokens" else "text characters" for basis in bases)


def _stability_table(data: ReportInput, stability: dict[str, list[RequestConsistency]]) -> list[Block]:
    rows = []
    for key, results in stability.items():
        if results:
            identical = sum(r.comparison.exact_match for r in results)
            rows.append(cells(data.label(key), len(results),
                              Cell(f"{identical} / {len(results)}", "good" if identical == len(results) else "warn"),
                              f"{np.mean([r.comparison.agreement for r in results]):.1%}"))
    if not rows:
        return []
    caption = "Greedy decoding should repeat itself exactly: later repeats compared with each request's first answer."
    return [Table(["backend", "later answers compared", "identical to the first", "mean agreement"], rows, caption)]


def _agreement_matrix(views: list[BackendView], pairs, stability) -> np.ndarray:
    index = {view.key: position for position, view in enumerate(views)}
    matrix = np.full((len(views), len(views)), np.nan)
    for (a, b), results in pairs.items():
        if results:
            matrix[index[a], index[b]] = matrix[index[b], index[a]] = np.mean([r.comparison.agreement for r in results])
    for key, results in stability.items():
        if results:
            matrix[index[key], index[key]] = np.mean([r.comparison.agreement for r in results])
    return matrix


def _pair_details(label_a: str, label_b: str, results: list[RequestConsistency]) -> list[Block]:
    if not results:
        return []
    ordered = sorted(results, key=lambda r: (r.comparison.exact_match, r.request_id))
    rows = [cells(r.request_id, Cell("yes", "good") if r.comparison.exact_match else Cell("no", "warn"),
                  f"{r.comparison.agreement:.1%}",
                  "none" if r.comparison.first_divergence is None else r.comparison.first_divergence,
                  number(r.comparison.edit_distance, 3), f"{r.comparison.length_a} / {r.comparison.length_b}")
            for r in ordered[:ROWS_PER_PAIR]]
    hidden = len(ordered) - ROWS_PER_PAIR
    caption = f"{label_a} vs {label_b}, per request" + (f"; {hidden} more rows in {CSV_NAME}" if hidden > 0 else "")
    headers = ["request", "exact match", "agreement", "first divergence", "edit distance", "lengths a / b"]
    blocks: list[Block] = [Table(headers, rows, caption)]
    for result in [r for r in ordered if not r.comparison.exact_match][:DIFFS_PER_PAIR]:
        blocks.append(_diff(label_a, label_b, result))
    return blocks


def _diff(label_a: str, label_b: str, result: RequestConsistency) -> SideBySide:
    """The two outputs split at their first differing character; token ids around the first differing token."""
    text_a, text_b = result.a.text, result.b.text
    split = common_prefix(text_a, text_b)
    sides = []
    for label, record, text in ((label_a, result.a, text_a), (label_b, result.b, text_b)):
        start = max(0, split - CONTEXT_BEFORE)
        agreed = ("…" if start else "") + text[start:split]
        rest = text[split:split + SHOWN_AFTER] + ("…" if len(text) > split + SHOWN_AFTER else "")
        tokens = _token_window(record.token_ids, result.comparison.first_divergence) if result.basis == "tokens" else ""
        sides.append(Side(label, _visible(agreed), _visible(rest), tokens))
    where = result.comparison.first_divergence
    unit = "token" if result.basis == "tokens" else "character"
    title = f"{result.request_id} (repeat {result.repeat}): first divergence at {unit} {where}, text character {split}"
    return SideBySide(title, sides[0], sides[1], "Highlighted: from the first differing character on. Each ↵ marks a newline.")


def _token_window(token_ids: list[int] | None, position: int | None) -> str:
    if token_ids is None or position is None:
        return ""
    start = max(0, position - TOKEN_WINDOW)
    window = token_ids[start:position + TOKEN_WINDOW + 1]
    shown = [f"[{tid}]" if index == position else str(tid) for index, tid in enumerate(window, start=start)]
    if position >= len(token_ids):
        shown.append("[output ends]")
    return f"token ids {start}-{start + len(window) - 1}, first difference in brackets: {' '.join(shown)}"


def _visible(text: str) -> str:
    """Whitespace made visible; a run of newlines becomes ↵ marks and a single line break."""
    text = text.replace("\r", "␍").replace("\t", "→\t")
    return re.sub(r"\n+", lambda run: "↵" * len(run.group()) + "\n", text)


def _write_csv(path: Path, data: ReportInput, pairs: dict[tuple[str, str], list[RequestConsistency]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["backend_a", "backend_b", "request_id", "repeat", "basis", "exact_match", "agreement",
                         "first_divergence", "edit_distance", "length_a", "length_b"])
        for (a, b), results in pairs.items():
            for r in results:
                c = r.comparison
                writer.writerow([data.label(a), data.label(b), r.request_id, r.repeat, r.basis, c.exact_match,
                                 f"{c.agreement:.6g}", "" if c.first_divergence is None else c.first_divergence,
                                 f"{c.edit_distance:.6g}", c.length_a, c.length_b])
