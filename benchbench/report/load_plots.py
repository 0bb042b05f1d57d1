"""Load curves (matplotlib, Agg): throughput against latency per engine, latency and goodput
against the load level, and the client's scheduling lag where an HTTP client measured it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from benchbench.report.plots import STYLE, _save
from benchbench.results.load import PointSummary


def _of(rows: Sequence[PointSummary], name: str) -> list[float | None]:
    """One registry metric (``ttft_s_p99``) at each point."""
    return [p.metrics[name] for p in rows]


def _ms(values) -> list[float]:
    return [float("nan") if v is None else v * 1e3 for v in values]


def load_figures(points: dict[str, Sequence[PointSummary]], labels: dict[str, str], out_dir: Path) -> list[tuple[Path, str]]:
    figures = [(_curves(points, labels, out_dir / "load_curves.png"),
                "Throughput against latency: one line per engine, one marker per load point")]  # fmt: skip
    figures.append((_levels(points, labels, out_dir / "load_levels.png"),
                    "TTFT, TPOT and goodput against the load level (concurrency or request rate)"))  # fmt: skip
    if any(p.metrics["lag_s_p99"] is not None for rows in points.values() for p in rows):
        figures.append((_lag(points, labels, out_dir / "load_lag.png"), "The load client's scheduling lag per point"))
    return figures


def _curves(points, labels, path: Path) -> Path:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for key, rows in points.items():
            x = [p.achieved_req_s for p in rows]
            for axis, values in zip(axes, (_of(rows, "ttft_s_p99"), _of(rows, "tpot_s_p99"))):
                axis.plot(x, _ms(values), marker="o", label=labels[key])
                for p, xi, yi in zip(rows, x, _ms(values)):
                    axis.annotate(p.point.split("=")[-1], (xi, yi), fontsize=7, textcoords="offset points", xytext=(3, 3))
        for axis, name in zip(axes, ("TTFT p99 (ms)", "TPOT p99 (ms)")):
            axis.set(xlabel="achieved requests / s", ylabel=name)
        axes[0].legend(fontsize=8)
        return _save(fig, path)


def _levels(points, labels, path: Path) -> Path:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for key, rows in points.items():
            x = [p.value for p in rows]
            axes[0].plot(x, _ms(_of(rows, "ttft_s_p50")), marker="o", label=f"{labels[key]} p50")
            axes[0].plot(x, _ms(_of(rows, "ttft_s_p99")), marker="^", linestyle="--", label=f"{labels[key]} p99")
            axes[1].plot(x, _ms(_of(rows, "tpot_s_p50")), marker="o", label=labels[key])
            good = [float("nan") if v is None else v for v in _of(rows, "goodput_req_s")]
            axes[2].plot(x, [p.achieved_req_s for p in rows], marker="o", label=f"{labels[key]} achieved")
            axes[2].plot(x, good, marker="s", linestyle="--", label=f"{labels[key]} goodput")
        kind = next(iter(points.values()))[-1].kind
        for axis, name in zip(axes, ("TTFT (ms)", "TPOT p50 (ms)", "requests / s")):
            axis.set(xlabel=f"load level ({kind})", ylabel=name)
            axis.legend(fontsize=7)
        return _save(fig, path)


def _lag(points, labels, path: Path) -> Path:
    with plt.rc_context(STYLE):
        fig, axis = plt.subplots(figsize=(5, 3.2))
        for key, rows in points.items():
            axis.plot([p.value for p in rows], _ms(_of(rows, "lag_s_p99")), marker="o", label=labels[key])
        axis.axhline(1.0, color="grey", linestyle=":", label="1 ms: client-limited above")
        axis.set(xlabel="load level", ylabel="scheduling lag p99 (ms)")
        axis.legend(fontsize=8)
        return _save(fig, path)
