"""What a load point adds up to: the metric registry over the point's records, plus the verdicts
only a point has (within the SLO, client-limited).

Every number of a point is the registry's (``results/metrics.py``) over that point's measured
records: rates over each repeat's wall span (first send to last answer), so a slow first request
and a long tail both count, averaged over repeats; percentiles pooled over the point's requests.
summary.csv's rows, the baseline's ``NAME@POINT`` samples, gate rules and the report's load
section all read it. Goodput counts the requests that met every SLO threshold. A point is
*within the SLO* when its p99 TTFT and p99 TPOT meet the thresholds and its error rate stays
under the scenario's limit; the headline is, per engine, the highest achieved request rate among
such points. A point is *client-limited* when the client's own scheduling lag p99 exceeds 1 ms or
it sent slower than the target rate: its numbers then describe the client, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchbench.results import metrics
from benchbench.results.records import RequestRecord

CLIENT_LAG_LIMIT_S = 1e-3
RATE_SHORTFALL = 0.95


@dataclass(frozen=True)
class PointSummary:
    point: str
    kind: str
    value: float
    requests: int
    errors: int
    metrics: dict[str, float | None]
    """every published metric of a point (``metrics.published_names(load=True)``) over its records"""
    samples: dict[str, list[float]]
    """one value per repeat of each metric every record measures: what a baseline keeps"""
    sent_req_s: float | None
    within_slo: bool | None
    client_limited: bool

    @property
    def achieved_req_s(self) -> float:
        return self.metrics["req_s"] or 0.0


def meets_slo(ttft_s: float | None, tpot_s: float | None, ttft_limit_s: float | None, tpot_limit_s: float | None) -> bool:
    """A request counts towards goodput when it meets every threshold given (unknown fails)."""
    checks = [(ttft_s, ttft_limit_s), (tpot_s, tpot_limit_s)]
    return all(value is not None and value <= limit for value, limit in checks if limit is not None)


def by_point(records: Iterable[RequestRecord]) -> dict[str, list[RequestRecord]]:
    """Measured records under load, per point label, points in run order."""
    groups: dict[str, list[RequestRecord]] = {}
    for record in records:
        if record.phase == "measure" and record.load is not None:
            groups.setdefault(record.load.point, []).append(record)
    return groups


def point_samples(records: Iterable[RequestRecord]) -> dict[str, list[float]]:
    """Every point's repeat-level samples under ``NAME@POINT``: a load run's baseline and gate metrics."""
    return {metrics.at_point(name, point): values
            for point, own in by_point(records).items() for name, values in metrics.repeat_samples(own).items()}


def summarize_point(
    records: Sequence[RequestRecord],
    ttft_limit_s: float | None = None,
    tpot_limit_s: float | None = None,
    max_error_rate: float = 0.1,
) -> PointSummary:
    """One point's measured records: the registry's metrics and the point's verdicts."""
    first = records[0].load
    assert first is not None, "a load point's records carry their load fields"
    values = metrics.aggregate(records)
    sent_req_s = _sent_req_s(records) if first.point_kind == "rate" else None
    within = None
    if ttft_limit_s is not None or tpot_limit_s is not None:
        within = (values["error_rate"] or 0.0) <= max_error_rate and meets_slo(
            values["ttft_s_p99"], values["tpot_s_p99"], ttft_limit_s, tpot_limit_s
        )
    lag = values["lag_s_p99"]
    limited = (lag is not None and lag > CLIENT_LAG_LIMIT_S) or (
        sent_req_s is not None and sent_req_s < RATE_SHORTFALL * first.point_value
    )
    return PointSummary(
        point=first.point, kind=first.point_kind, value=first.point_value, requests=len(records),
        errors=sum(not metrics.answered(r) for r in records), metrics=values, samples=metrics.repeat_samples(records),
        sent_req_s=sent_req_s, within_slo=within, client_limited=limited,
    )  # fmt: skip


def _sent_req_s(records: Sequence[RequestRecord]) -> float | None:
    """The rate the client really sent at: the target rate scaled by due span over send span."""
    repeats = metrics.by_repeat(records).values()
    if len(records) <= len(repeats):
        return None
    loads = [[r.load for r in group] for group in repeats]
    send_span = sum(max(x.sent_s for x in group) - min(x.sent_s for x in group) for group in loads)
    due_span = sum(max(x.due_s for x in group) - min(x.due_s for x in group) for group in loads)
    return records[0].load.point_value * due_span / send_span if send_span > 0 else None


def sustained(points: Sequence[PointSummary]) -> PointSummary | None:
    """The point with the highest achieved request rate among those within the SLO."""
    within = [p for p in points if p.within_slo]
    return max(within, key=lambda p: p.achieved_req_s) if within else None
