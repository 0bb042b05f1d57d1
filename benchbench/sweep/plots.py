"""Per-axis figures of a sweep (matplotlib, Agg): output tokens/s with 95% intervals and TTFT p50
against one axis, a line per engine and setting of the other axes."""

from __future__ import annotations

from pathlib import Path

from benchbench.report.inputs import PALETTE
from benchbench.report.plots import STYLE, _save, plt
from benchbench.results import metrics
from benchbench.sweep.table import CellRow


def axis_plot(axis: str, rows: list[CellRow], path: Path) -> Path:
    """Two panels against ``axis``; its values are placed in the order the sweep lists them."""
    values: list[str] = []
    series: dict[str, list[tuple[int, CellRow]]] = {}
    for row in rows:
        if not row.finished or axis not in row.cell.assignments:
            continue
        value = str(row.cell.assignments[axis])
        if value not in values:
            values.append(value)
        others = ", ".join(f"{k}={v}" for k, v in row.cell.assignments.items() if k != axis)
        series.setdefault(" ".join(filter(None, [row.series, others])), []).append((values.index(value), row))
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        for number, (label, points) in enumerate(series.items()):
            colour = PALETTE[number % len(PALETTE)]
            xs = [x for x, _ in points]
            intervals = [row.intervals["output_tok_s"] for _, row in points]
            errors = [[max(0.0, i.estimate - i.low) if i.defined else 0.0 for i in intervals],
                      [max(0.0, i.high - i.estimate) if i.defined else 0.0 for i in intervals]]
            left.errorbar(xs, [i.estimate for i in intervals], yerr=errors, marker="o", capsize=3, color=colour, label=label)
            right.plot(xs, [row.metric("ttft_s_p50") for _, row in points], marker="o", color=colour, label=label)
        for ax, title in ((left, "Output tokens per second"), (right, metrics.heading("ttft_s_p50"))):
            ax.set_xticks(range(len(values)), values)
            ax.set_xlabel(axis)
            ax.set_title(title)
        if series:
            right.legend(fontsize=7, loc="best")
        return _save(fig, path)
