"""How a load point releases requests: small strategy classes, one per load shape.

A strategy answers two questions for the scheduler: when is each request due (``due_offsets``:
seconds after the point starts, or None for a closed loop, where a request is due the moment a
slot frees) and how many may be in flight at once (``max_in_flight``, None for no cap).
guidellm's scheduler (synchronous, concurrent, throughput, constant, poisson; a sweep profile)
is the model; the arithmetic here is benchbench's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchbench.config.load import Arrivals, LoadPoint, LoadSpec
from benchbench.workload.arrivals import send_offsets


class Strategy(ABC):
    """One load shape; ``label`` names it in records and gate rules."""

    def __init__(self, point: LoadPoint):
        self.point = point

    @property
    def label(self) -> str:
        return self.point.label

    @property
    @abstractmethod
    def max_in_flight(self) -> int | None: ...

    @abstractmethod
    def due_offsets(self, count: int, seed: int) -> np.ndarray | None: ...


class SynchronousStrategy(Strategy):
    """One request at a time, the next sent when the last finishes (benchbench's serial runs)."""

    max_in_flight = 1

    def due_offsets(self, count: int, seed: int) -> None:
        return None


class ConcurrentStrategy(Strategy):
    """Closed loop: N requests always in flight."""

    @property
    def max_in_flight(self) -> int:
        return int(self.point.value)

    def due_offsets(self, count: int, seed: int) -> None:
        return None


class ThroughputStrategy(Strategy):
    """Every request due at once (optionally capped): the engine's saturated throughput."""

    @property
    def max_in_flight(self) -> int | None:
        return self.point.max_in_flight

    def due_offsets(self, count: int, seed: int) -> np.ndarray:
        return np.zeros(count)


class RateStrategy(Strategy):
    """Open loop at ``point.value`` req/s; arrivals drawn from the seed (the workload's schedule)."""

    arrivals: ClassVar[Arrivals]

    @property
    def max_in_flight(self) -> int | None:
        return self.point.max_in_flight

    def due_offsets(self, count: int, seed: int) -> np.ndarray:
        return send_offsets(self.arrivals, self.point.value, count, seed, self.point.burstiness)


class ConstantRateStrategy(RateStrategy):
    arrivals = "constant"


class PoissonStrategy(RateStrategy):
    arrivals = "poisson"


class GammaStrategy(RateStrategy):
    """Gamma inter-arrivals: burstiness 1 is Poisson, below 1 burstier, above 1 more regular."""

    arrivals = "gamma"


_RATE_STRATEGIES: dict[str, type[RateStrategy]] = {
    cls.arrivals: cls for cls in (ConstantRateStrategy, PoissonStrategy, GammaStrategy)
}


def strategy_for(point: LoadPoint) -> Strategy:
    if point.kind == "serial":
        return SynchronousStrategy(point)
    if point.kind == "concurrency":
        return ConcurrentStrategy(point)
    if point.kind == "throughput":
        return ThroughputStrategy(point)
    return _RATE_STRATEGIES[point.arrivals](point)


@dataclass(frozen=True)
class SweepProfile:
    """guidellm-style sweep: serial and saturated throughput first, then ``size`` rates evenly
    between the two measured request rates, so the whole curve needs no prior knowledge."""

    spec: LoadSpec
    size: int

    def rates_between(self, serial_req_s: float, throughput_req_s: float) -> list[float]:
        low, high = sorted((serial_req_s, throughput_req_s))
        rates = np.linspace(low, high, self.size + 2)[1:-1]
        return [float(f"{rate:.3g}") for rate in rates]

    def rate_points(self, serial_req_s: float, throughput_req_s: float, count: int, warmup: int) -> list[LoadPoint]:
        return [self.spec.rate_point(rate, count, warmup) for rate in self.rates_between(serial_req_s, throughput_req_s)]
