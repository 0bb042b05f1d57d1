"""Throughput per backend with bootstrap intervals, and speed relative to a reference backend.

With two or more repeats the samples are the repeats' wall-clock throughputs (requests, or output
tokens, over the span from the first request's start to the last one's end). With one repeat they
are the requests themselves: a resample's rate is Σ/Σe2e (busy time), scaled by the run's
Σe2e/span so that the point estimate is still the wall-clock throughput.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchbench.results.records import RequestRecord, to_dataframe
from benchbench.results.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Interval,
    bootstrap_ratio_of_sums_ci,
    interval_from,
    percentiles,
    resampled_means,
    resampled_ratios_of_sums,
)
from benchbench.results.summary import repeat_throughput

Basis = Literal["repeats", "requests"]
METRICS = ("req_s", "output_tok_s")


@dataclass(frozen=True)
class Throughput:
    """One backend's requests/s and output tokens/s, each with its bootstrap distribution kept for ratios."""

    key: str
    basis: Basis
    samples: int
    intervals: dict[str, Interval]
    distributions: dict[str, np.ndarray]


def seed_for(key: str) -> int:
    """A stable per-backend seed, so backends resample independently yet reports rebuild identically."""
    return zlib.crc32(key.encode())


def throughput(key: str, measured: Sequence[RequestRecord]) -> Throughput:
    frame = to_dataframe(list(measured))
    per_repeat = repeat_throughput(frame)
    rng = np.random.default_rng(seed_for(key))
    if len(per_repeat) >= 2:
        distributions = {m: resampled_means(per_repeat[m].to_numpy(), DEFAULT_RESAMPLES, rng) for m in METRICS}
        estimates = {m: float(per_repeat[m].mean()) for m in METRICS}
        basis, samples = "repeats", len(per_repeat)
    else:
        estimates = {m: float(per_repeat[m].iloc[0]) for m in METRICS}
        busy_fraction = frame["e2e_s"].sum() / per_repeat["span_s"].iloc[0]
        numerators = {"req_s": np.ones(len(frame)), "output_tok_s": frame["output_tokens"].to_numpy(float)}
        distributions = {
            m: resampled_ratios_of_sums(numerators[m], frame["e2e_s"].to_numpy(), DEFAULT_RESAMPLES, rng) * busy_fraction
            for m in METRICS
        }
        basis, samples = "requests", len(frame)
    intervals = {m: interval_from(estimates[m], distributions[m], samples, DEFAULT_CONFIDENCE) for m in METRICS}
    return Throughput(key, basis, samples, intervals, distributions)


def relative(candidate: Throughput, reference: Throughput, metric: str = "output_tok_s") -> Interval:
    """candidate / reference for one metric; 1.5 means the candidate is 1.5x as fast."""
    estimate = candidate.intervals[metric].estimate / reference.intervals[metric].estimate
    with np.errstate(divide="ignore", invalid="ignore"):
        distribution = candidate.distributions[metric] / reference.distributions[metric]
    return interval_from(estimate, distribution, min(candidate.samples, reference.samples), DEFAULT_CONFIDENCE)


def verdict(ratio: Interval) -> str:
    """faster / slower when the whole interval is on one side of 1, else not distinguishable."""
    if not ratio.defined:
        return "no interval"
    if ratio.low > 1:
        return "faster"
    if ratio.high < 1:
        return "slower"
    return "not distinguishable"


@dataclass(frozen=True)
class SweepPoint:
    """One backend at one tile budget; throughput over busy time, since budgets are interleaved."""

    key: str
    max_tiles: int
    tiles_planned_mean: float
    image_tokens_mean: float
    requests: int
    output_tok_s: Interval
    ttft_s: dict[float, float]
    e2e_s_median: float


def sweep_points(key: str, measured: Sequence[RequestRecord]) -> list[SweepPoint]:
    """Per tile budget (records' max_tiles); empty unless the backend ran more than one budget."""
    frame = to_dataframe(list(measured))
    if frame["max_tiles"].nunique() < 2:
        return []
    points = []
    for budget, group in frame.groupby("max_tiles", sort=True):
        tokens, seconds = group["output_tokens"].to_numpy(float), group["e2e_s"].to_numpy()
        points.append(SweepPoint(
            key=key,
            max_tiles=int(budget),
            tiles_planned_mean=float(group["tiles_planned"].mean()),
            image_tokens_mean=float(group["image_tokens_planned"].mean()),
            requests=len(group),
            output_tok_s=bootstrap_ratio_of_sums_ci(tokens, seconds, seed=seed_for(f"{key}@{budget}")),
            ttft_s=percentiles(group["ttft_s"].dropna().to_numpy(), (25, 50, 75)),
            e2e_s_median=float(group["e2e_s"].median()),
        ))
    return points

