"""The report's resource section: GPU memory, utilisation, power and energy per output token, and
the engine process tree's host memory and CPU time, per backend and phase, with memory over time."""

from __future__ import annotations

from pathlib import Path

from benchbench.report.document import Cell, Figure, Note, Section, Table, cells, number
from benchbench.report.inputs import ReportInput
from benchbench.report.plots import memory_timeline_plot
from benchbench.results import metrics
from benchbench.results.load import by_point
from benchbench.results.resources import backend_figures, phase_figures

HOW = ("Sampled at ~15 Hz on a thread of the backend's worker from the end of model load to its last request "
       "(\"serve\", warmups included) and, apart, during model load (\"load\"). GPU figures come from NVML and "
       "are device-wide (a launched server's use included), summed over GPUs; energy is NVML's total-energy "
       "counter over the window, divided by the window's output tokens. Host figures cover the worker's whole "
       "process tree (a launched server included). The sampler's own CPU time is listed: it is the cost of "
       "measuring.")  # fmt: skip
GPU_HEADERS = ["GPU mem peak (MiB)", "GPU mem mean (MiB)", "SM util (%)", "power (W)", "energy (J)",
               "J / output token"]
HOST_HEADERS = ["host RSS peak (MiB)", "CPU (s)", "window (s)", "samples", "sampler CPU (s)"]


def resources_section(data: ReportInput, out_dir: Path) -> Section | None:
    """None when no backend was sampled (runs from before the sampler existed)."""
    sampled = [view for view in data.backends if view.outcome.resources]
    if not sampled:
        return None
    phases = [(view, phase, view.outcome.resources[phase]) for view in sampled for phase in ("load", "serve")
              if view.outcome.resources.get(phase)]  # fmt: skip
    any_gpu = any(usage.get("gpus") for _, _, usage in phases)
    rows = []
    for view, phase, usage in phases:
        totals = backend_figures(view.outcome, [r for r in data.records if r.backend == view.key])
        gpu = _gpu_cells(usage, totals if phase == "serve" else None, data.under_load) if any_gpu else [_why(usage)]
        rows.append(cells(view.label, phase, *gpu, *_host_cells(usage)))
    headers = ["backend", "phase", *(GPU_HEADERS if any_gpu else ["GPU"]), *HOST_HEADERS]
    plot = memory_timeline_plot(sampled, out_dir / "memory_over_time.png")
    caption = "GPU memory used and host RSS" if any_gpu else "host RSS"
    points = _per_point_table(data) if data.under_load else None
    return Section("resources", "Resources: memory and energy", [
        Note(HOW, "muted"),
        Table(headers, rows, "per backend and phase"),
        *([points] if points else []),
        Figure(plot, "memory over time per backend", f"{caption} of the process tree during serving, per backend"),
    ])  # fmt: skip


PER_POINT = ("gpu_mem_peak_mib", "joules_per_token")


def _per_point_table(data: ReportInput) -> Table | None:
    """A load run's GPU memory peak and energy per output token at each point (the registry's, from each
    request's own GPU window), never over the whole serving window; None without GPU figures."""
    rows = []
    for view in data.backends:
        for point, records in by_point(data.measured(view.key)).items():
            values = metrics.aggregate(records)
            if any(values[name] is not None for name in PER_POINT):
                rows.append(cells(metrics.at_point(view.label, point), *(number(values[name]) for name in PER_POINT)))
    headers = ["backend@point", *(f"{metrics.metric(name).label} ({metrics.metric(name).unit})" for name in PER_POINT)]
    return Table(headers, rows, "per load point: from the first start to the last end of each repeat's requests, "
                                "averaged over repeats (summary.csv's columns)") if rows else None


def _why(usage: dict) -> Cell:
    return Cell(f"none: {usage.get('gpu_error') or 'no GPU found'}", "muted")


def _gpu_cells(usage: dict, totals: dict | None, under_load: bool = False) -> list[Cell | str]:
    if not usage.get("gpus"):
        return [_why(usage)] + [""] * (len(GPU_HEADERS) - 1)
    figures = phase_figures(usage)
    per_token = "" if not totals else "per load point below" if under_load else number(totals["joules_per_token"])
    return [number(figures[key]) for key in ("gpu_mem_peak_mib", "gpu_mem_mean_mib", "sm_util_mean_pct",
                                             "power_mean_w", "energy_j")] + [per_token]  # fmt: skip


def _host_cells(usage: dict) -> list[str]:
    figures = phase_figures(usage)
    hz = usage["samples"] / usage["window_s"] if usage.get("window_s") else 0.0
    return [number(figures["host_rss_peak_mib"]), number(figures["host_cpu_s"]), number(usage.get("window_s")),
            f"{usage['samples']} ({hz:.0f} Hz)", number(figures["sampler_cpu_s"])]
