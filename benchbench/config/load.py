"""Load in a scenario: which load points a run measures, and the SLO its goodput is judged by.

``serial`` (no ``load`` block) is one request at a time, as benchbench always ran, so existing
scenarios, hashes and baselines keep their meaning. Otherwise exactly one of:

- ``concurrency: [1, 4, 16]``: closed loop, N requests in flight;
- ``rate: [1, 2, 4]``: open loop, seeded arrivals (``poisson``, ``constant`` or ``gamma`` with
  ``burstiness``), optionally capped by ``max_in_flight``;
- ``sweep: N``: serial, then saturated throughput, then N rates evenly between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from benchbench.config.fields import STRICT, Int

Arrivals = Literal["poisson", "constant", "gamma"]
PointKind = Literal["serial", "concurrency", "rate", "throughput"]


class _Strict(BaseModel):
    model_config = STRICT


class SloSpec(_Strict):
    """Latency a user accepts; a request meeting every threshold counts towards goodput."""

    ttft_p99_s: float | None = Field(default=None, gt=0)
    tpot_p99_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_threshold(self) -> SloSpec:
        if self.ttft_p99_s is None and self.tpot_p99_s is None:
            raise ValueError("give ttft_p99_s, tpot_p99_s or both")
        return self


class LoadSpec(_Strict):
    concurrency: list[Int] | None = Field(default=None, min_length=1)
    rate: list[float] | None = Field(default=None, min_length=1)
    sweep: Int | None = Field(default=None, ge=1, le=32)
    arrivals: Arrivals = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=100, description="gamma shape: 1 is Poisson, < 1 burstier")
    max_in_flight: Int | None = Field(default=None, ge=1, le=4096)
    requests: Int | None = Field(default=None, ge=1, le=100_000, description="per point [scenario requests]")
    duration_s: float | None = Field(default=None, gt=0, le=86_400, description="per point, instead of a count")
    warmup: Int | None = Field(default=None, ge=0, le=4096, description="per point [requests it holds in flight]")
    max_error_rate: float = Field(default=0.1, ge=0, le=1, description="past this a backend fails")
    client_processes: Int = Field(default=1, ge=1, le=64, description=(
        "load-client processes for server backends (requests dealt round-robin): more when one cannot keep up; "
        "how requests are sent, not what, so not part of the workload hash"))

    @model_validator(mode="after")
    def _one_mode(self) -> LoadSpec:
        modes = [name for name in ("concurrency", "rate", "sweep") if getattr(self, name) is not None]
        if len(modes) > 1:
            raise ValueError(f"give one of concurrency, rate or sweep, not {' and '.join(modes)}")
        if any(not 1 <= n <= 4096 for n in self.concurrency or []):
            raise ValueError("each concurrency must be between 1 and 4096")
        if any(not 0 < r <= 100_000 for r in self.rate or []):
            raise ValueError("each rate must be above 0 and at most 100000 req/s")
        if self.burstiness != 1.0 and self.arrivals != "gamma":
            raise ValueError("burstiness applies to arrivals: gamma only; set arrivals: gamma or remove it")
        if self.requests is not None and self.duration_s is not None:
            raise ValueError("give requests or duration_s per point, not both")
        return self

    @property
    def mode(self) -> Literal["serial", "concurrency", "rate", "sweep"]:
        for name in ("concurrency", "rate", "sweep"):
            if getattr(self, name) is not None:
                return name  # type: ignore[return-value]
        return "serial"

    def points(self, scenario_requests: int, scenario_warmup: int) -> list[LoadPoint]:
        """The points known before the run; a sweep's rates come from its first two points."""
        count = self.requests or scenario_requests
        if self.mode == "concurrency":
            return [self._point("concurrency", n, count, n) for n in self.concurrency or []]
        if self.mode == "rate":
            return [self.rate_point(r, count, scenario_warmup) for r in self.rate or []]
        if self.mode == "sweep":
            return [self._point("serial", 1, count, scenario_warmup), self._throughput_point(count, scenario_warmup)]
        return [LoadPoint("serial", 1.0, count, None, scenario_warmup, "constant", 1.0, 1)]

    def rate_point(self, rate: float, count: int, scenario_warmup: int) -> LoadPoint:
        return self._point("rate", rate, count, scenario_warmup)

    def _throughput_point(self, count: int, scenario_warmup: int) -> LoadPoint:
        return self._point("throughput", float(self.max_in_flight or count), count, scenario_warmup)

    def _point(self, kind: PointKind, value: float, count: int, default_warmup: int) -> LoadPoint:
        cap = int(value) if kind in ("serial", "concurrency") else self.max_in_flight
        warmup = self.warmup if self.warmup is not None else default_warmup
        return LoadPoint(kind, float(value), count, self.duration_s, warmup, self.arrivals, self.burstiness, cap)


@dataclass(frozen=True)
class LoadPoint:
    """One load level: how requests are released, how many, and what is warmup."""

    kind: PointKind
    value: float
    """concurrency N, rate in req/s, or (throughput) the cap in flight"""
    requests: int
    duration_s: float | None
    warmup: int
    arrivals: Arrivals
    burstiness: float
    max_in_flight: Int | None

    @property
    def label(self) -> str:
        """The point's name in records, reports and gate rules (``rate=4``, ``concurrency=16``)."""
        if self.kind in ("serial", "throughput"):
            return self.kind
        return f"{self.kind}={self.value:g}"

    @property
    def open_loop(self) -> bool:
        return self.kind == "rate"
