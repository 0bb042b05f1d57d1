"""Per-backend resource figures from a run folder: the sampler's phases (manifest) and the records.

GPU figures are summed over the GPUs the sampler saw (memory: the sum of each GPU's peak), so one
number stands for a multi-GPU engine; energy per output token divides the serving window's energy
by every output token produced in it (warmups included: the GPU spent that energy too). With no
GPU, the GPU figures are None and ``gpu_error`` holds NVML's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchbench.results.records import BackendOutcome, RequestRecord

FIGURES = ("gpu_mem_peak_mib", "gpu_mem_mean_mib", "sm_util_mean_pct", "power_mean_w", "energy_j",
           "joules_per_token", "host_rss_peak_mib", "host_cpu_s", "load_gpu_mem_peak_mib", "load_host_rss_peak_mib",
           "sampler_cpu_s")  # fmt: skip


def _total(gpus: list[dict], key: str) -> float | None:
    values = [gpu[key] for gpu in gpus if gpu.get(key) is not None]
    return sum(values) if values else None


def _mean(gpus: list[dict], key: str) -> float | None:
    values = [gpu[key] for gpu in gpus if gpu.get(key) is not None]
    return sum(values) / len(values) if values else None


def phase_figures(phase: dict[str, Any]) -> dict[str, float | None]:
    """One phase's figures (keys without the ``load_`` prefix)."""
    gpus = phase.get("gpus") or []
    return {
        "gpu_mem_peak_mib": _total(gpus, "memory_peak_mib"),
        "gpu_mem_mean_mib": _total(gpus, "memory_mean_mib"),
        "sm_util_mean_pct": _mean(gpus, "sm_util_mean_pct"),
        "power_mean_w": _total(gpus, "power_mean_w"),
        "energy_j": _total(gpus, "energy_j"),
        "host_rss_peak_mib": phase.get("host_rss_peak_mib"),
        "host_cpu_s": phase.get("host_cpu_s"),
        "sampler_cpu_s": phase.get("sampler_cpu_s"),
    }


def backend_figures(outcome: BackendOutcome, records: Sequence[RequestRecord]) -> dict[str, Any]:
    """Every figure in FIGURES for one backend (None where not measured) plus ``gpu_error``;
    ``records`` are that backend's, warmups included."""
    serve, load = outcome.resources.get("serve") or {}, outcome.resources.get("load") or {}
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    if serve:
        figures.update(phase_figures(serve))
        window = [r for r in records if r.started_at >= serve["started_at"]]  # a resumed run's earlier records are out
        tokens = sum(r.output_tokens for r in window)
        if figures["energy_j"] is not None and tokens:
            figures["joules_per_token"] = figures["energy_j"] / tokens
    if load:
        loaded = phase_figures(load)
        figures["load_gpu_mem_peak_mib"] = loaded["gpu_mem_peak_mib"]
        figures["load_host_rss_peak_mib"] = loaded["host_rss_peak_mib"]
    figures["gpu_error"] = (serve or load).get("gpu_error") if (serve or load) else "not sampled"
    return figures


def _request_gpu(record: RequestRecord, key: str) -> float | None:
    return ((record.details or {}).get("resources") or {}).get(key)


def gpu_mem_peak_of(records: Sequence[RequestRecord]) -> float | None:
    """The GPU memory peak over the records' spans (MiB, summed over GPUs); None if any lacks it."""
    peaks = [_request_gpu(r, "gpu_mem_peak_mib") for r in records]
    return max(peaks) if peaks and None not in peaks else None


def joules_per_token_of(records: Sequence[RequestRecord]) -> float | None:
    """Energy from the first record's start to the last one's end over their output tokens: right
    however the requests overlapped (a load point); None if any record lacks the counters."""
    starts = [_request_gpu(r, "energy_mj_start") for r in records]
    ends = [_request_gpu(r, "energy_mj_end") for r in records]
    tokens = sum(r.output_tokens for r in records)
    if not records or None in starts or None in ends or not tokens:
        return None
    return (max(ends) - min(starts)) / 1000 / tokens
