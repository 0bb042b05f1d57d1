"""The report's figures (matplotlib, Agg). Each backend keeps one colour in every plot; stand-ins are
hatched and dashed as well as labelled. PNGs carry no software or date metadata, so a rebuilt
report is byte-identical."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from benchbench.report.inputs import BackendView  # noqa: E402
from benchbench.report.throughput import METRICS, SweepPoint, Throughput  # noqa: E402
from benchbench.results import metrics  # noqa: E402
from benchbench.results.records import RequestRecord  # noqa: E402

# text.parse_math off: labels carry folder names and options, and "$\foo$" must show as typed, not crash mathtext
STYLE = {"text.parse_math": False, "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110, "savefig.dpi": 110}
STAND_IN_HATCH = "//"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def throughput_plot(views: Sequence[BackendView], results: dict[str, Throughput], path: Path) -> Path:
    """Two bar panels (requests/s, output tokens/s) with 95% CI error bars."""
    shown = [view for view in views if view.key in results]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 0.45 * max(len(shown), 2)))
        for ax, metric in zip(axes, METRICS):
            for row, view in enumerate(shown):
                interval = results[view.key].intervals[metric]
                error = None
                if interval.defined:
                    error = [[interval.estimate - interval.low], [interval.high - interval.estimate]]
                ax.barh(row, interval.estimate, xerr=error, color=view.colour, capsize=4,
                        hatch=STAND_IN_HATCH if view.stand_in else None, edgecolor="black", linewidth=0.4)
                ax.annotate(f" {interval.estimate:.4g}", (interval.high if interval.defined else interval.estimate, row),
                            va="center", fontsize=8)
            ax.set_yticks(range(len(shown)), [view.label for view in shown])
            ax.invert_yaxis()
            ax.set_xlabel(metrics.metric(metric).unit)
            ax.set_title(metrics.metric(metric).label + " (95% CI)")
            ax.margins(x=0.18)
        axes[1].set_yticklabels([])
        return _save(fig, path)


SEGMENT_STYLES = {"preprocessing (client)": (0.35, None), "TTFT": (1.0, None), "decode": (0.65, ".."),
                  "after last token": (0.15, None), "generation (engine does not stream: no TTFT)": (0.8, "xx")}


def _segments(records: Sequence[RequestRecord]) -> dict[str, float]:
    """Mean seconds per latency segment; without streamed tokens, generation is one segment."""
    pre, ttft, decode, e2e = (metrics.metric(name).aggregate(records, "mean")
                              for name in ("preprocess_s", "ttft_s", "decode_s", "e2e_s"))
    if math.isnan(ttft):
        return {"preprocessing (client)": pre, "generation (engine does not stream: no TTFT)": e2e - pre}
    return {"preprocessing (client)": pre, "TTFT": ttft, "decode": decode,
            "after last token": max(e2e - pre - ttft - decode, 0.0)}


def latency_breakdown_plot(views: Sequence[BackendView], measured: dict[str, list[RequestRecord]], path: Path) -> Path:
    """Stacked mean latency per backend: preprocessing, TTFT, decode, and what follows the last token."""
    shown = [view for view in views if measured.get(view.key)]
    inside = {view.key: any(r.preprocess_in_ttft for r in measured[view.key]) for view in shown}
    used: set[str] = set()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9, 1.5 + 0.5 * len(shown)))
        for row, view in enumerate(shown):
            left = 0.0
            for name, width in _segments(measured[view.key]).items():
                alpha, hatch = SEGMENT_STYLES[name]
                ax.barh(row, width, left=left, color=view.colour, alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.4)
                left += width
                used.add(name)
            ax.annotate(f" {left:.3g} s", (left, row), va="center", fontsize=8)
        ax.set_yticks(range(len(shown)), [view.label + (" *" if inside[view.key] else "") for view in shown])
        ax.invert_yaxis()
        ax.set_xlabel("mean latency per request (s)")
        note = "\n* preprocessing happens inside the engine: it is counted in TTFT (or generation)" if any(inside.values()) else ""
        ax.set_title("Where a request's time goes (means over measured requests)" + note)
        legend = [Patch(facecolor="grey", alpha=alpha, hatch=hatch, edgecolor="black", label=name)
                  for name, (alpha, hatch) in SEGMENT_STYLES.items() if name in used]
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.margins(x=0.1)
        return _save(fig, path)


def latency_cdf_plot(views: Sequence[BackendView], measured: dict[str, list[RequestRecord]], path: Path) -> Path:
    """Empirical CDFs of TTFT and end-to-end latency."""
    shown = [view for view in views if measured.get(view.key)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for ax, name, title in ((axes[0], "ttft_s", "Time to first token"), (axes[1], "e2e_s", "End-to-end latency")):
            for view in shown:
                values = np.sort(metrics.metric(name).values(measured[view.key]))
                if values.size:
                    fractions = np.arange(1, values.size + 1) / values.size
                    ax.step(values, fractions, where="post", color=view.colour, label=view.label,
                            linestyle="--" if view.stand_in else "-", linewidth=1.6)
            ax.set_xlabel(f"{title.lower()} (s)")
            ax.set_ylabel("share of requests")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{title}: cumulative distribution")
        axes[1].legend(fontsize=8, loc="lower right")
        return _save(fig, path)


def agreement_heatmap(views: Sequence[BackendView], matrix: np.ndarray, path: Path) -> Path:
    """Mean token (or character) agreement for every pair; the diagonal is agreement across repeats."""
    labels = [view.label for view in views]
    size = len(labels)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, ax = plt.subplots(figsize=(2.6 + 1.1 * size, 1.8 + 0.8 * size))
        masked = np.ma.masked_invalid(matrix)
        cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
        image = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0)
        for i in range(size):
            for j in range(size):
                value = matrix[i, j]
                ax.text(j, i, "n/a" if math.isnan(value) else f"{value:.0%}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(size), labels, rotation=30, ha="right")
        ax.set_yticks(range(size), labels)
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            for tick, view in zip(ticks, views):
                tick.set_color(view.colour)
        ax.set_title("Output agreement: share of identical positions\n(diagonal: each backend against its own repeats)",
                     fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, format=matplotlib.ticker.PercentFormatter(1.0))
        return _save(fig, path)


def sweep_plot(views: Sequence[BackendView], points: dict[str, list[SweepPoint]], path: Path) -> Path:
    """Output tokens/s and TTFT against the tile count each budget produced."""
    shown = [view for view in views if points.get(view.key)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for view in shown:
            series = points[view.key]
            x = [p.tiles_planned_mean for p in series]
            style = dict(color=view.colour, marker="o", capsize=4, linestyle="--" if view.stand_in else "-", label=view.label)
            rates = [p.output_tok_s for p in series]
            axes[0].errorbar(x, [r.estimate for r in rates], yerr=_error_bars([(r.estimate, r.low, r.high) for r in rates]), **style)
            ttft = [(p.ttft_s["p50"], p.ttft_s["p25"], p.ttft_s["p75"]) for p in series]
            axes[1].errorbar(x, [t[0] for t in ttft], yerr=_error_bars(ttft), **style)
            for point in series:
                axes[1].annotate(f"max {point.max_tiles}", (point.tiles_planned_mean, point.ttft_s["p50"]),
                                 textcoords="offset points", xytext=(4, -10), fontsize=7, color=view.colour)
        axes[0].set_title("Output tokens/s vs tiles\n(busy time, 95% CI)")
        axes[0].set_ylabel("output tokens / s")
        axes[1].set_title("TTFT vs tiles\n(median, bars: 25th-75th percentile)")
        axes[1].set_ylabel("time to first token (s)")
        for ax in axes:
            ax.set_xlabel("tiles per request (mean planned, incl. thumbnail)")
        axes[0].legend(fontsize=8)
        return _save(fig, path)


def option_sweep_plot(key: str, members: Sequence[BackendView], results: dict[str, Throughput],
                      ttft: dict[str, dict[str, float]], path: Path) -> Path:
    """Output tokens/s (95% CI) and TTFT (median, interquartile bars) against one backend option."""
    x = [view.outcome.options[key] for view in members]
    rates = [results[view.key].intervals["output_tok_s"] for view in members]
    medians = [(ttft[view.key]["p50"], ttft[view.key]["p25"], ttft[view.key]["p75"]) for view in members]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for ax, triples in ((axes[0], [(r.estimate, r.low, r.high) for r in rates]), (axes[1], medians)):
            ax.plot(x, [t[0] for t in triples], color="#999999", linewidth=1, zorder=1)
            for view, value, triple in zip(members, x, triples):
                ax.errorbar([value], [triple[0]], yerr=_error_bars([triple]), color=view.colour, marker="o", capsize=4,
                            label=view.label, linestyle="none")
            ax.set_xticks(x, [f"{value:g}" for value in x])
            ax.set_xlabel(key)
        axes[0].set_title(f"Output tokens/s vs {key}\n(95% CI)")
        axes[0].set_ylabel("output tokens / s")
        axes[1].set_title(f"TTFT vs {key}\n(median, bars: 25th-75th percentile)")
        axes[1].set_ylabel("time to first token (s)")
        axes[0].legend(fontsize=8)
        return _save(fig, path)


def _error_bars(triples: list[tuple[float, float, float]]) -> np.ndarray:
    """[[below], [above]] distances from (centre, low, high) triples; zero where there is no interval."""
    below = [0.0 if math.isnan(low) else centre - low for centre, low, _ in triples]
    above = [0.0 if math.isnan(high) else high - centre for centre, _, high in triples]
    return np.array([below, above])


def memory_timeline_plot(views: Sequence[BackendView], path: Path) -> Path:
    """GPU memory used and host RSS over the serving window, one line per backend (GPU panel only with a GPU)."""
    serving = [(view, view.outcome.resources["serve"]) for view in views if view.outcome.resources.get("serve")]
    with_gpu = any(usage.get("gpus") for _, usage in serving)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2 if with_gpu else 1, figsize=(9 if with_gpu else 5, 3.2), squeeze=False)
        panels = [(1, "host RSS of the process tree (MiB)")]
        if with_gpu:
            panels.insert(0, (0, "GPU memory used (MiB)"))
        for ax, (column, title) in zip(axes[0], panels):
            for view, usage in serving:
                points = usage.get("timeline") or []
                ax.plot([p[0] for p in points], [p[1 + column] for p in points], color=view.colour, label=view.label,
                        linestyle="--" if view.stand_in else "-", linewidth=1.2)  # fmt: skip
            ax.set_title(title)
            ax.set_xlabel("seconds after load")
        axes[0][0].legend(fontsize=7)
        return _save(fig, path)
