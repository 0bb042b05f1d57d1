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

from benchbench.results import metrics
from benchbench.results.records import RequestRecord
from benchbench.results.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Interval,
    Replicates,
    bootstrap_ratio_of_sums_ci,
    mean_replicates,
    ratio_of_sums_replicates,
)

Basis = Literal["repeats", "requests"]
METRICS = ("req_s", "output_tok_s")
"""The registry's rates the headline shows."""
QUARTILES = ("p25", "p50", "p75")


@dataclass(frozen=True)
class Throughput:
    """One backend's requests/s and output tokens/s, each with its bootstrap replicates kept for ratios."""

    key: str
    basis: Basis
    samples: int
    intervals: dict[str, Interval]
    replicates: dict[str, Replicates]


def seed_for(key: str) -> int:
    """A stable per-backend seed, so backends resample independently yet reports rebuild identically."""
    return zlib.crc32(key.encode())


def throughput(key: str, measured: Sequence[RequestRecord]) -> Throughput:
    repeats = list(metrics.by_repeat(measured).values())
    rates = {m: metrics.metric(m) for m in METRICS}
    rng = np.random.default_rng(seed_for(key))
    if len(repeats) >= 2:
        replicates = {m: mean_replicates([rates[m].per_repeat(group) for group in repeats], DEFAULT_RESAMPLES, rng,
                                         log=True) for m in METRICS}
        basis, samples = "repeats", len(repeats)
    else:
        requests = repeats[0]
        seconds = np.array([r.e2e_s for r in requests])
        busy_fraction = float(seconds.sum()) / metrics.wall_span_s(requests)
        replicates = {m: ratio_of_sums_replicates(_counts(m, requests), seconds, DEFAULT_RESAMPLES, rng)
                      .scaled(busy_fraction) for m in METRICS}
        basis, samples = "requests", len(requests)
    intervals = {m: replicates[m].interval(DEFAULT_CONFIDENCE) for m in METRICS}
    return Throughput(key, basis, samples, intervals, replicates)


def _counts(rate: str, requests: Sequence[RequestRecord]) -> np.ndarray:
    """What each request adds to the rate's numerator (1 request, its output tokens)."""
    return np.array([metrics.metric(rate).count(r) for r in requests], dtype=float)


def relative(candidate: Throughput, reference: Throughput, metric: str = "output_tok_s") -> Interval:
    """candidate / reference for one metric; 1.5 means the candidate is 1.5x as fast."""
    return candidate.replicates[metric].over(reference.replicates[metric]).interval(DEFAULT_CONFIDENCE)


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
    ttft_s: dict[str, float]
    """p25 / p50 / p75 of TTFT."""
    e2e_s_p50: float


def sweep_points(key: str, measured: Sequence[RequestRecord]) -> list[SweepPoint]:
    """Per tile budget (records' max_tiles); empty unless the backend ran more than one budget."""
    budgets: dict[int, list[RequestRecord]] = {}
    for record in measured:
        budgets.setdefault(record.max_tiles, []).append(record)
    if len(budgets) < 2:
        return []
    ttft, e2e = metrics.metric("ttft_s"), metrics.metric("e2e_s")
    points = []
    for budget, group in sorted(budgets.items()):
        seconds = np.array([r.e2e_s for r in group])
        points.append(SweepPoint(
            key=key,
            max_tiles=budget,
            tiles_planned_mean=float(np.mean([r.tiles_planned for r in group])),
            image_tokens_mean=float(np.mean([r.image_tokens_planned for r in group])),
            requests=len(group),
            output_tok_s=bootstrap_ratio_of_sums_ci(_counts("output_tok_s", group), seconds,
                                                    seed=seed_for(f"{key}@{budget}")),
            ttft_s={stat: ttft.aggregate(group, stat) for stat in QUARTILES},
            e2e_s_p50=e2e.aggregate(group, "p50"),
        ))
    return points
