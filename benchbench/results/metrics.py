"""The one definition of every metric: its name (with unit), label, unit, better direction, how one
request yields it and how it is aggregated. summary.csv, the CLI table, the report, the plots, the
baseline and the gate all read this registry, so a metric is added here once (CONTRIBUTING.md).

Naming: a request metric ``ttft_s`` is published as ``ttft_s_<stat>`` (``ttft_s_p90``); a repeat
metric (a rate over a repeat's wall span, say) keeps its bare name (``output_tok_s``). Statistics
are ``mean``, ``min``, ``max`` and ``pNN`` (linear-interpolated percentiles, as numpy's default).
A run with load points publishes every metric once per point, as ``NAME@POINT``
(``ttft_s_p99@rate=4``): pooling a point of 1 request in flight with one of 16 would mean nothing.
Metrics marked ``load_only`` (goodput, error rate, client lag) exist only per point.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from benchbench.results.records import RequestRecord
from benchbench.results.resources import gpu_mem_peak_of, joules_per_token_of

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_STATISTICS: dict[str, Callable[[np.ndarray], float]] = {"mean": np.mean, "min": np.min, "max": np.max}


class Direction(str, Enum):
    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


def statistic(values: Sequence[float] | np.ndarray, stat: str) -> float:
    """``mean``/``min``/``max``/``pNN`` of the values; NaN when there are none."""
    data = np.asarray(values, dtype=float)
    percentile = _PERCENTILE.match(stat)
    if percentile is None and stat not in _STATISTICS:
        raise ValueError(f"unknown statistic {stat!r}: use mean, min, max or pNN")
    if data.size == 0:
        return math.nan
    if percentile:
        return float(np.percentile(data, float(percentile.group(1))))
    return float(_STATISTICS[stat](data))


@dataclass(frozen=True)
class RequestMetric:
    """A value each measured request yields (a list for per-token values), aggregated over requests.

    ``value`` returns None where the engine could not measure it (no streamed tokens, say).
    """

    name: str
    label: str
    unit: str
    better: Direction
    value: Callable[[RequestRecord], float | Sequence[float] | None]
    stats: tuple[str, ...] = ("mean", "p50", "p90")
    description: str = ""
    display_unit: str = ""
    display_scale: float = 1.0
    """Shown in ``display_unit`` (e.g. ms) after multiplying by ``display_scale``; stored in ``unit``."""
    load_only: bool = False
    """Measured only under a load point (a serial run's summary.csv does not carry it)."""

    @property
    def published(self) -> list[str]:
        return [f"{self.name}_{stat}" for stat in self.stats]

    def values(self, records: Iterable[RequestRecord]) -> np.ndarray:
        """Every request's value(s) pooled, requests without one left out."""
        pooled: list[float] = []
        for record in records:
            value = self.value(record)
            if value is None:
                continue
            pooled.extend(value if isinstance(value, Sequence) else [value])
        return np.asarray(pooled, dtype=float)

    def measured_by_all(self, records: Sequence[RequestRecord]) -> bool:
        """Every answered request has a value (a failed request under load has none to give)."""
        answers = [record for record in records if answered(record)]
        return bool(answers) and all(self.value(record) is not None for record in answers)

    def aggregate(self, records: Iterable[RequestRecord], stat: str) -> float:
        return statistic(self.values(records), stat)

    def shown(self, value: float) -> float:
        return value * self.display_scale

    @property
    def shown_unit(self) -> str:
        return self.display_unit or self.unit


@dataclass(frozen=True)
class RepeatMetric:
    """One value per repeat, from that repeat's requests (a rate over its wall span, say);
    aggregated as the mean over repeats."""

    name: str
    label: str
    unit: str
    better: Direction
    per_repeat: Callable[[Sequence[RequestRecord]], float | None]
    description: str = ""
    count: Callable[[RequestRecord], float] | None = None
    """For rates: what one request adds to the numerator (1 for requests, its tokens for tokens/s)."""
    load_only: bool = False

    @property
    def published(self) -> list[str]:
        return [self.name]


Metric = RequestMetric | RepeatMetric
REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric; every consumer picks it up. Names must be unique across published names too."""
    taken = {name for existing in REGISTRY.values() for name in existing.published}
    clash = set(metric.published) & taken or ({metric.name} & REGISTRY.keys())
    if clash:
        raise ValueError(f"metric name(s) {sorted(clash)} already registered")
    REGISTRY[metric.name] = metric
    return metric


def wall_span_s(records: Sequence[RequestRecord]) -> float:
    """From the first request's start to the last one's end, what a user waits for the whole repeat,
    summed over uninterrupted sessions: a resumed run's interruption, restart and warmup are no one's
    throughput."""
    sessions: dict[int, list[RequestRecord]] = {}
    for record in records:
        sessions.setdefault(record.session, []).append(record)
    return sum(max(r.started_at + r.e2e_s for r in group) - min(r.started_at for r in group) for group in sessions.values())


def rate(name: str, label: str, unit: str, count: Callable[[RequestRecord], float], description: str,
         measured: Callable[[RequestRecord], bool] | None = None, load_only: bool = False) -> RepeatMetric:
    """Σcount over the repeat's wall span (higher is better); None unless ``measured`` holds for every record."""

    def per_repeat(records: Sequence[RequestRecord]) -> float | None:
        if measured is not None and not all(measured(r) for r in records):
            return None
        span = wall_span_s(records) if records else 0.0
        return sum(count(r) for r in records) / span if span > 0 else None

    return RepeatMetric(name, label, unit, Direction.HIGHER_IS_BETTER, per_repeat, description, count, load_only)


def answered(record: RequestRecord) -> bool:
    """A serial run records answers only; under load an error or time-out is a record too."""
    return record.load is None or record.load.status == "ok"


def error_rate_of(records: Sequence[RequestRecord]) -> float | None:
    """The share of a load point's requests that failed or timed out."""
    if not records or any(r.load is None for r in records):
        return None
    return sum(not answered(r) for r in records) / len(records)


def time_per_output_token_s(record: RequestRecord) -> float | None:
    """Seconds per output token after the first: from the first token to the end of the request,
    over the remaining tokens. TTFT is excluded (guidellm's "TPOT" includes it); our e2e_s also
    counts client-side preprocessing, so that is taken out too."""
    if record.ttft_s is None or record.output_tokens < 2:
        return None
    return (record.e2e_s - record.preprocess_s - record.ttft_s) / (record.output_tokens - 1)


LATENCY = Direction.LOWER_IS_BETTER
for _metric in (
    rate("req_s", "Requests per second", "requests / s", lambda r: float(answered(r)),
         "answered measured requests over the repeat's wall span (summed over uninterrupted sessions)"),
    rate("output_tok_s", "Output tokens per second", "output tokens / s", lambda r: float(r.output_tokens),
         "output tokens over the repeat's wall span (summed over uninterrupted sessions)"),
    RequestMetric("preprocess_s", "preprocessing", "s", LATENCY, lambda r: r.preprocess_s,
                  description="client-side image preprocessing and request preparation"),
    RequestMetric("ttft_s", "TTFT", "s", LATENCY, lambda r: r.ttft_s, ("mean", "p50", "p90", "p99"),
                  "submitting the prepared request to the first token"),
    RequestMetric("decode_s", "decode", "s", LATENCY, lambda r: r.decode_s,
                  description="first token to last token"),
    RequestMetric("e2e_s", "end-to-end", "s", LATENCY, lambda r: r.e2e_s, ("mean", "p50", "p90", "p99"),
                  "preprocessing start to the request's end"),
    RequestMetric("decode_tok_s", "decode speed", "tokens / s", Direction.HIGHER_IS_BETTER, lambda r: r.decode_tok_s,
                  description="tokens after the first chunk over decode time (unknown where the stream does not say "
                              "how many tokens each chunk carried)"),
    RequestMetric("inter_token_s", "inter-token", "s", LATENCY, lambda r: r.inter_token_s, ("p50", "p99"),
                  "gap before each streamed token after the first (a k-token chunk spreads its gap over k)",
                  display_unit="ms", display_scale=1e3),
    RequestMetric("inter_chunk_s", "inter-chunk", "s", LATENCY, lambda r: r.inter_chunk_s, ("p50", "p99"),
                  "gap before each streamed chunk after the first, for streams that do not say how many tokens "
                  "a chunk carried (their per-token gaps are unknown)", display_unit="ms", display_scale=1e3),
    RequestMetric("tpot_s", "TPOT", "s", LATENCY, time_per_output_token_s, ("mean", "p50", "p90", "p99"),
                  "time per output token after the first (TTFT excluded)", display_unit="ms", display_scale=1e3),
    RepeatMetric("gpu_mem_peak_mib", "GPU memory peak", "MiB", LATENCY, gpu_mem_peak_of,
                 "device-wide GPU memory used at its highest during the repeat's requests, summed over GPUs (NVML)"),
    RepeatMetric("joules_per_token", "Energy per output token", "J / token", LATENCY, joules_per_token_of,
                 "GPU energy (NVML counters, summed over GPUs) from the repeat's first start to its last end, "
                 "over its output tokens"),
    rate("goodput_req_s", "Goodput (requests per second)", "requests / s",
         lambda r: float(answered(r) and bool(r.load.within_slo)),
         "answered requests meeting every SLO threshold (the scenario's slo) over the repeat's wall span",
         measured=lambda r: r.load is not None and r.load.within_slo is not None, load_only=True),
    RepeatMetric("error_rate", "Error rate", "share of requests", Direction.LOWER_IS_BETTER, error_rate_of,
                 "requests that failed or timed out, over all requests of the point", load_only=True),
    RequestMetric("lag_s", "client lag", "s", LATENCY, lambda r: r.load.lag_s if r.load else None, ("p99",),
                  "the load client's scheduling lag: sent late, not waiting for a slot (HTTP load client only)",
                  display_unit="ms", display_scale=1e3, load_only=True),
):
    register(_metric)


def metric(name: str) -> Metric:
    return REGISTRY[name]


def _former_names() -> dict[str, str]:
    """Names from before the registry (baselines of schema 1, the first sweep objectives): a timing's
    statistic after its unit (``ttft_p99_s``), and what the registry calls it now (``ttft_s_p99``)."""
    former = {"decode_tok_s": "decode_tok_s_mean"}
    for entry in REGISTRY.values():
        if isinstance(entry, RequestMetric) and entry.unit == "s":
            stem = entry.name.removesuffix("_s")
            former |= {f"{stem}_{stat}_s": name for stat, name in zip(entry.stats, entry.published)}
    return former


FORMER_NAMES = _former_names()


def former_name_message(name: str, usage: str) -> str | None:
    """The one-line refusal of a former name, naming the new one; ``usage`` (how the user wrote it,
    ``ttft_p99_s <= 0.5``) is shown rewritten as the fix. None for a name that is not a former one."""
    new = FORMER_NAMES.get(name)
    if new is None:
        return None
    return f"metric {name!r} is now called {new!r}; write '{usage.replace(name, new, 1)}'"


def published_names(load: bool = False) -> list[str]:
    """Every aggregated name, registry order: the columns of summary.csv, the metrics a gate knows;
    ``load``: those of a load point (the load-only ones included)."""
    return [name for entry in REGISTRY.values() if load or not entry.load_only for name in entry.published]


POINT_SEPARATOR = "@"


def at_point(published: str, point: str) -> str:
    """``ttft_s_p99`` at ``rate=4``: ``ttft_s_p99@rate=4``, the name baselines and gate rules use."""
    return f"{published}{POINT_SEPARATOR}{point}"


def split_point(name: str) -> tuple[str, str | None]:
    """``ttft_s_p99@rate=4`` -> (``ttft_s_p99``, ``rate=4``); a name without a point -> (name, None)."""
    published, separator, point = name.partition(POINT_SEPARATOR)
    return published, point if separator else None


def resolve(published: str) -> tuple[Metric, str | None]:
    """``ttft_s_p90`` -> (ttft_s, "p90"); ``output_tok_s`` -> (output_tok_s, None). KeyError if unknown."""
    for entry in REGISTRY.values():
        if published in entry.published:
            return entry, None if isinstance(entry, RepeatMetric) else published.removeprefix(entry.name + "_")
    raise KeyError(published)


def direction(published: str) -> Direction:
    return resolve(published)[0].better


def by_repeat(records: Iterable[RequestRecord]) -> dict[int, list[RequestRecord]]:
    groups: dict[int, list[RequestRecord]] = {}
    for record in records:
        groups.setdefault(record.repeat, []).append(record)
    return dict(sorted(groups.items()))


def aggregate(records: Sequence[RequestRecord]) -> dict[str, float | None]:
    """Every published metric over one backend's measured records: request metrics over the pooled
    requests, repeat metrics as the mean over repeats. None where nothing was measured."""
    repeats = by_repeat(records)
    result: dict[str, float | None] = {}
    for entry in REGISTRY.values():
        if isinstance(entry, RepeatMetric):
            samples = [v for v in (entry.per_repeat(group) for group in repeats.values()) if v is not None]
            result[entry.name] = float(np.mean(samples)) if samples else None
            continue
        values = entry.values(records)
        for stat, name in zip(entry.stats, entry.published):
            result[name] = statistic(values, stat) if values.size else None
    return result


def repeat_samples(records: Sequence[RequestRecord]) -> dict[str, list[float]]:
    """One sample per repeat (repeat order) of every published metric that every record measures;
    what a baseline keeps and a gate compares."""
    repeats = list(by_repeat(records).values())
    samples: dict[str, list[float]] = {}
    for entry in REGISTRY.values():
        if isinstance(entry, RepeatMetric):
            values = [entry.per_repeat(group) for group in repeats]
            if values and all(v is not None for v in values):
                samples[entry.name] = [float(v) for v in values]  # type: ignore[arg-type]
        elif entry.measured_by_all(records):
            for stat, name in zip(entry.stats, entry.published):
                samples[name] = [entry.aggregate(group, stat) for group in repeats]
    return samples


def heading(*published: str) -> str:
    """A column heading for one metric's published names: ``TTFT p50 / p90 (s)``, ``requests / s``."""
    entry, stat = resolve(published[0])
    if stat is None:
        return entry.unit
    stats = [resolve(name)[1] for name in published]
    return f"{entry.label} {' / '.join(stats)} ({entry.shown_unit})"  # type: ignore[arg-type]


def shown_values(records: Sequence[RequestRecord], *published: str) -> list[float] | None:
    """One request metric's published statistics over the records, in its display unit; None if unmeasured."""
    entry, _ = resolve(published[0])
    assert isinstance(entry, RequestMetric), f"{entry.name} is not a request metric"
    values = entry.values(records)
    if not values.size:
        return None
    return [entry.shown(statistic(values, resolve(name)[1])) for name in published]  # type: ignore[arg-type]
