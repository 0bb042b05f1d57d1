"""Percentiles and seeded percentile-bootstrap intervals: of a mean, of a ratio of means, of a ratio of sums.

Pure functions over plain numbers; the same seed gives the same interval on every call. A
percentile bootstrap can never reach beyond the samples' range, so with very few samples (three
repeats) its interval is the range of those samples and covers the true mean less often than
nominal; the report says so next to such intervals (``SMALL_SAMPLE``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 4000
DEFAULT_CONFIDENCE = 0.95
CHUNK_ELEMENTS = 1 << 21
SMALL_SAMPLE = 10
"""Below this many samples a percentile-bootstrap interval is noticeably too narrow."""


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval; ``low``/``high`` are NaN when it has none."""

    estimate: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def contains(self, value: float) -> bool:
        return self.defined and self.low <= value <= self.high

    def format(self, digits: int = 3, suffix: str = "") -> str:
        """``2.61x [2.40, 2.83]`` style; the interval is omitted when there is none."""
        value = f"{_round(self.estimate, digits)}{suffix}"
        if not self.defined:
            return value
        return f"{value} [{_round(self.low, digits)}, {_round(self.high, digits)}]"


def _round(value: float, digits: int) -> str:
    if not math.isfinite(value):
        return str(value)
    magnitude = math.floor(math.log10(abs(value))) if value else 0
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def percentiles(values: Sequence[float], quantiles: Sequence[float] = (50, 90, 99)) -> dict[float, float]:
    """Linear-interpolated percentiles (0-100) of the values; NaN for each when there are none."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {q: math.nan for q in quantiles}
    return {q: float(v) for q, v in zip(quantiles, np.percentile(data, list(quantiles)))}


def _resample_indices(size: int, resamples: int, rng: np.random.Generator):
    """Index arrays of shape (rows, size), in chunks that keep memory bounded for many samples."""
    rows = max(1, CHUNK_ELEMENTS // size)
    for start in range(0, resamples, rows):
        yield rng.integers(0, size, size=(min(rows, resamples - start), size))


def resampled_means(samples: Sequence[float], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples (with replacement) of the samples."""
    data = _as_samples(samples)
    return np.concatenate([data[picks].mean(axis=1) for picks in _resample_indices(data.size, resamples, rng)])


def resampled_ratios_of_sums(
    numerators: Sequence[float], denominators: Sequence[float], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Σnumerator/Σdenominator over resamples of (numerator, denominator) pairs, e.g. tokens/seconds."""
    top, bottom = _as_samples(numerators), _as_samples(denominators)
    if top.size != bottom.size:
        raise ValueError(f"{top.size} numerators but {bottom.size} denominators")
    chunks = _resample_indices(top.size, resamples, rng)
    return np.concatenate([top[picks].sum(axis=1) / bottom[picks].sum(axis=1) for picks in chunks])


def interval_from(estimate: float, distribution: np.ndarray, samples: int, confidence: float) -> Interval:
    """The percentile interval of a bootstrap distribution; none from a single sample."""
    if samples < 2:
        return Interval(estimate, math.nan, math.nan, confidence)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(distribution, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), confidence)


def bootstrap_mean_ci(
    samples: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of the samples with a percentile-bootstrap confidence interval."""
    data = _as_samples(samples)
    distribution = resampled_means(data, resamples, np.random.default_rng(seed))
    return interval_from(float(data.mean()), distribution, data.size, confidence)


def bootstrap_ratio_ci(
    baseline_samples: Sequence[float],
    candidate_samples: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """mean(candidate) / mean(baseline) with a bootstrap interval, the two groups resampled independently.

    1.25 means the candidate's mean is 25% higher than the baseline's (for throughput: faster).
    """
    baseline, candidate = _as_samples(baseline_samples), _as_samples(candidate_samples)
    rng = np.random.default_rng(seed)
    base_means = resampled_means(baseline, resamples, rng)
    cand_means = resampled_means(candidate, resamples, rng)
    estimate = _divide(candidate.mean(), baseline.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        distribution = cand_means / base_means
    return interval_from(estimate, distribution, min(baseline.size, candidate.size), confidence)


def bootstrap_ratio_of_sums_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Σnumerator/Σdenominator (a rate such as tokens per busy second) with a paired bootstrap interval."""
    top, bottom = _as_samples(numerators), _as_samples(denominators)
    distribution = resampled_ratios_of_sums(top, bottom, resamples, np.random.default_rng(seed))
    return interval_from(_divide(top.sum(), bottom.sum()), distribution, top.size, confidence)


def _divide(top: float, bottom: float) -> float:
    return float(top / bottom) if bottom else math.inf if top else math.nan


def _as_samples(samples: Sequence[float]) -> np.ndarray:
    data = np.asarray(samples, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap needs a non-empty one-dimensional list of samples")
    return data
