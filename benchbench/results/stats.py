"""Seeded bootstrap confidence intervals: of a mean, a ratio of means, a ratio of sums, and a ratio
of two independent such estimates.

The interval is the symmetric bootstrap-t (studentized bootstrap): each resample's estimate is
studentized by that resample's own standard error, and the interval is estimate ± q·se with q the
resamples' confidence quantile of |t|. Ratios are studentized on the log scale (delta-method
standard errors), so their intervals stay positive. Below SMALL_SAMPLE samples q is Student's t.

Why not a percentile or BCa interval: neither can reach beyond what the resamples' estimates span,
so with few samples they are too narrow. ``benchmarks/bootstrap_coverage.py`` measures coverage on
skewed latency-like data at n = 10 and 30, beside scipy's percentile and BCa intervals (numbers in
the README). Pure functions over plain numbers; the same seed gives the same interval on every call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

DEFAULT_RESAMPLES = 4000
DEFAULT_CONFIDENCE = 0.95
CHUNK_ELEMENTS = 1 << 21
SMALL_SAMPLE = 10
"""From this many samples the bootstrap-t quantile is used (its coverage is measured at 10 and 30);
with fewer, resamples are too coarse for it (three samples give wildly wide intervals) and Student's t is used."""
ROUNDING = 1e-9
"""A standard error this small relative to its estimate is rounding noise on identical values."""


MIN_REPEATS = 3
"""Fewest repeats an interval over repeats is given (and the gate judges) from: with two, Student's t
has one degree of freedom and the interval spans past zero for any real spread."""


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


@dataclass(frozen=True)
class Replicates:
    """An estimate and its standard error, and the same pair for every bootstrap resample, on the
    scale the interval is built on (``log`` for ratios)."""

    estimate: float
    se: float
    estimates: np.ndarray
    ses: np.ndarray
    samples: int
    log: bool = False

    def interval(self, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
        """estimate ± q·se: q from the resamples' studentized |t| (bootstrap-t) from SMALL_SAMPLE samples up,
        below that Student's t with samples - 1 degrees of freedom; none from a single sample, a point
        when the data do not vary."""
        back = math.exp if self.log else float
        point = _back(back, self.estimate)
        if self.samples < 2 or not math.isfinite(self.estimate):
            return Interval(point, math.nan, math.nan, confidence)
        if self.se == 0:
            return Interval(point, point, point, confidence)
        quantile = self._bootstrap_t(confidence) if self.samples >= SMALL_SAMPLE else None
        if quantile is None:
            quantile = float(student_t.ppf((1 + confidence) / 2, self.samples - 1))
        half = quantile * self.se
        return Interval(point, _back(back, self.estimate - half), _back(back, self.estimate + half), confidence)

    def _bootstrap_t(self, confidence: float) -> float | None:
        """The confidence quantile of |estimate* - estimate| / se* over the resamples.

        A resample of identical values has a standard error of zero (up to rounding) and so no t.
        """
        studentizable = self.ses > ROUNDING * (1.0 if self.log else abs(self.estimate) or 1.0)
        t = np.abs(self.estimates[studentizable] - self.estimate) / self.ses[studentizable]
        t = t[np.isfinite(t)]
        return float(np.quantile(t, confidence)) if t.size else None

    def scaled(self, factor: float) -> Replicates:
        """The same ratio multiplied by a constant (log scale only)."""
        assert self.log, "only a log-scale estimate can be scaled by a factor"
        shift = math.log(factor)
        return Replicates(self.estimate + shift, self.se, self.estimates + shift, self.ses, self.samples, True)

    def over(self, other: Replicates) -> Replicates:
        """self / other for two independently resampled log-scale estimates (speed vs a reference)."""
        assert self.log and other.log, "ratios of estimates are built on the log scale"
        return Replicates(self.estimate - other.estimate, math.hypot(self.se, other.se),
                          self.estimates - other.estimates, np.hypot(self.ses, other.ses),
                          min(self.samples, other.samples), True)


def _back(transform, value: float) -> float:
    if not math.isfinite(value):
        return value
    try:
        return transform(value)
    except OverflowError:
        return math.inf


def _resample_indices(size: int, resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays of shape (rows, size), in chunks that keep memory bounded for many samples."""
    rows = max(1, CHUNK_ELEMENTS // size)
    for start in range(0, resamples, rows):
        yield rng.integers(0, size, size=(min(rows, resamples - start), size))


def _mean_and_se(data: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    size = data.shape[axis]
    spread = data.std(axis=axis, ddof=1) if size > 1 else np.zeros(data.shape[:-1])
    return data.mean(axis=axis), spread / math.sqrt(size)


def mean_replicates(samples: Sequence[float], resamples: int, rng: np.random.Generator, log: bool = False) -> Replicates:
    """The mean and its standard error, of the samples and of each resample (log of the mean if ``log``)."""
    data = _as_samples(samples)
    mean, se = _mean_and_se(data)
    pairs = [_mean_and_se(data[picks]) for picks in _resample_indices(data.size, resamples, rng)]
    means, ses = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    if not log:
        return Replicates(float(mean), float(se), means, ses, data.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Replicates(_log(mean), float(se / mean), np.log(means), ses / means, data.size, True)


def ratio_of_sums_replicates(
    numerators: Sequence[float], denominators: Sequence[float], resamples: int, rng: np.random.Generator
) -> Replicates:
    """log(Σnumerator/Σdenominator) over resampled (numerator, denominator) pairs, with the ratio
    estimator's delta-method standard error, e.g. tokens per busy second."""
    top, bottom = _as_samples(numerators), _as_samples(denominators)
    if top.size != bottom.size:
        raise ValueError(f"{top.size} numerators but {bottom.size} denominators")
    ratio, se = _ratio_and_log_se(top[None, :], bottom[None, :])
    pairs = [_ratio_and_log_se(top[picks], bottom[picks]) for picks in _resample_indices(top.size, resamples, rng)]
    ratios, ses = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    with np.errstate(divide="ignore", invalid="ignore"):
        return Replicates(_log(ratio[0]), float(se[0]), np.log(ratios), ses, top.size, True)


def _ratio_and_log_se(top: np.ndarray, bottom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: R = Σtop/Σbottom and the standard error of log R (residuals top - R·bottom)."""
    size = top.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = top.sum(axis=-1) / bottom.sum(axis=-1)
        residuals = top - ratio[:, None] * bottom
        spread = np.sqrt((residuals**2).sum(axis=-1) / (size * max(size - 1, 1)))
        return ratio, spread / (bottom.mean(axis=-1) * ratio)


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf if value == 0 else math.nan


def bootstrap_mean_ci(
    samples: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of the samples with a bootstrap-t confidence interval."""
    return mean_replicates(samples, resamples, np.random.default_rng(seed)).interval(confidence)


def bootstrap_ratio_ci(
    baseline_samples: Sequence[float],
    candidate_samples: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """mean(candidate) / mean(baseline) with a bootstrap-t interval, the two groups resampled independently.

    1.25 means the candidate's mean is 25% higher than the baseline's (for throughput: faster).
    """
    rng = np.random.default_rng(seed)
    baseline = mean_replicates(baseline_samples, resamples, rng, log=True)
    candidate = mean_replicates(candidate_samples, resamples, rng, log=True)
    return candidate.over(baseline).interval(confidence)


def bootstrap_ratio_of_sums_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Σnumerator/Σdenominator (a rate such as tokens per busy second) with a paired bootstrap-t interval."""
    rng = np.random.default_rng(seed)
    return ratio_of_sums_replicates(numerators, denominators, resamples, rng).interval(confidence)


def _as_samples(samples: Sequence[float]) -> np.ndarray:
    data = np.asarray(samples, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap needs a non-empty one-dimensional list of samples")
    return data
