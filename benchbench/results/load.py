"""What a request records about the load it ran under, and what a load point adds up to.

A point's rates come from its own wall span (first send to last answer), so a slow first
request and a long tail both count; a point measured in several repeats (each with its own
clock) spans the sum of its repeats' spans. Goodput counts the requests that met every SLO threshold.
A point is *within the SLO* when its p99 TTFT and p99 TPOT meet the thresholds and its error
rate stays under the scenario's limit; the headline is, per engine, the highest achieved
request rate among such points. A point is *client-limited* when the client's own scheduling
lag p99 exceeds 1 ms or it sent slower than the target rate: its numbers then describe the
client, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

CLIENT_LAG_LIMIT_S = 1e-3
RATE_SHORTFALL = 0.95


class LoadFields(BaseModel):
    """One request's place in its load point; times in seconds from the point's start."""

    model_config = ConfigDict(extra="forbid")

    point: str
    """the point's label: ``serial``, ``concurrency=4``, ``rate=2``, ``throughput``"""
    point_kind: Literal["serial", "concurrency", "rate", "throughput"]
    point_value: float
    due_s: float
    sent_s: float
    lag_s: float | None = None
    """the client's scheduling lag (HTTP load client only): sent late, not waiting for a slot"""
    queue_s: float = 0.0
    """waited for a free in-flight slot (client cap) or for the engine (in process)"""
    first_byte_s: float | None = None
    """send to the response's first byte (HTTP)"""
    in_flight_at_send: int
    batch_size: int | None = None
    status: Literal["ok", "error", "timeout"] = "ok"
    message: str = ""
    within_slo: bool | None = None


@dataclass(frozen=True)
class PointRequest:
    """The numbers a point summary needs from one measured request."""

    load: LoadFields
    repeat: int
    done_s: float
    output_tokens: int
    ttft_s: float | None
    tpot_s: float | None


@dataclass(frozen=True)
class PointSummary:
    point: str
    kind: str
    value: float
    requests: int
    errors: int
    achieved_req_s: float
    output_tok_s: float
    goodput_req_s: float | None
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    tpot_p50_s: float | None
    tpot_p99_s: float | None
    lag_p99_s: float | None
    sent_req_s: float | None
    within_slo: bool | None
    client_limited: bool

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def _p(values: Sequence[float | None], q: float) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.percentile(present, q)) if present else None


def meets_slo(ttft_s: float | None, tpot_s: float | None, ttft_limit_s: float | None, tpot_limit_s: float | None) -> bool:
    """A request counts towards goodput when it meets every threshold given (unknown fails)."""
    checks = [(ttft_s, ttft_limit_s), (tpot_s, tpot_limit_s)]
    return all(value is not None and value <= limit for value, limit in checks if limit is not None)


def summarize_point(
    requests: Sequence[PointRequest],
    ttft_limit_s: float | None = None,
    tpot_limit_s: float | None = None,
    max_error_rate: float = 0.1,
) -> PointSummary:
    first = requests[0].load
    ok = [r for r in requests if r.load.status == "ok"]
    repeats = _by_repeat(requests)
    span = sum(max(r.done_s for r in group) - min(r.load.sent_s for r in group) for group in repeats)
    has_slo = ttft_limit_s is not None or tpot_limit_s is not None
    good = sum(meets_slo(r.ttft_s, r.tpot_s, ttft_limit_s, tpot_limit_s) for r in ok)
    ttft, tpot = [r.ttft_s for r in ok], [r.tpot_s for r in ok]
    lags = [r.load.lag_s for r in requests]
    sent_req_s = None
    if first.point_kind == "rate" and len(requests) > len(repeats):
        send_span = sum(max(r.load.sent_s for r in group) - min(r.load.sent_s for r in group) for group in repeats)
        due_span = sum(max(r.load.due_s for r in group) - min(r.load.due_s for r in group) for group in repeats)
        sent_req_s = first.point_value * due_span / send_span if send_span > 0 else None
    summary = PointSummary(
        point=first.point, kind=first.point_kind, value=first.point_value, requests=len(requests),
        errors=len(requests) - len(ok),
        achieved_req_s=len(ok) / span if span > 0 else 0.0,
        output_tok_s=sum(r.output_tokens for r in ok) / span if span > 0 else 0.0,
        goodput_req_s=good / span if has_slo and span > 0 else None,
        ttft_p50_s=_p(ttft, 50), ttft_p99_s=_p(ttft, 99), tpot_p50_s=_p(tpot, 50), tpot_p99_s=_p(tpot, 99),
        lag_p99_s=_p(lags, 99), sent_req_s=sent_req_s, within_slo=None, client_limited=False,
    )  # fmt: skip
    within = None
    if has_slo:
        within = summary.error_rate <= max_error_rate and meets_slo(
            summary.ttft_p99_s, summary.tpot_p99_s, ttft_limit_s, tpot_limit_s
        )
    limited = (summary.lag_p99_s is not None and summary.lag_p99_s > CLIENT_LAG_LIMIT_S) or (
        sent_req_s is not None and sent_req_s < RATE_SHORTFALL * first.point_value
    )
    return PointSummary(**{**summary.__dict__, "within_slo": within, "client_limited": limited})


def _by_repeat(requests: Sequence[PointRequest]) -> list[list[PointRequest]]:
    groups: dict[int, list[PointRequest]] = {}
    for request in requests:
        groups.setdefault(request.repeat, []).append(request)
    return list(groups.values())


def sustained(points: Sequence[PointSummary]) -> PointSummary | None:
    """The point with the highest achieved request rate among those within the SLO."""
    within = [p for p in points if p.within_slo]
    return max(within, key=lambda p: p.achieved_req_s) if within else None


def tpot_s(record) -> float | None:
    """Seconds per output token after the first (TTFT and preprocessing excluded)."""
    if record.ttft_s is None or record.output_tokens < 2:
        return None
    return (record.e2e_s - record.preprocess_s - record.ttft_s) / (record.output_tokens - 1)


def point_request(record) -> PointRequest:
    """A measured record's part in its point (``record.load`` is set)."""
    load = record.load
    return PointRequest(load, record.repeat, load.sent_s + record.e2e_s, record.output_tokens, record.ttft_s, tpot_s(record))
