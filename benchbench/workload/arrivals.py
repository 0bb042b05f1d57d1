"""Seeded open-loop arrival schedules.

A schedule is drawn once at unit rate from the scenario's seed and scaled by 1/rate, so every
engine, every rerun and every rate of a sweep sees the same pattern of gaps; its hash goes into
the workload hash.
"""

from __future__ import annotations

import hashlib

import numpy as np

from benchbench.config.load import Arrivals


def unit_gaps(arrivals: Arrivals, count: int, seed: int, burstiness: float = 1.0) -> np.ndarray:
    """Inter-arrival gaps with mean 1 s: exponential (Poisson), all 1, or gamma(shape=burstiness)."""
    rng = np.random.default_rng([seed, count, 0x10AD])
    if arrivals == "constant":
        return np.ones(count)
    if arrivals == "poisson":
        return rng.exponential(1.0, size=count)
    return rng.gamma(burstiness, 1.0 / burstiness, size=count)


def send_offsets(arrivals: Arrivals, rate: float, count: int, seed: int, burstiness: float = 1.0) -> np.ndarray:
    """Seconds after the point's start at which each request is due; the first at 0."""
    gaps = unit_gaps(arrivals, count, seed, burstiness) / rate
    return np.concatenate(([0.0], np.cumsum(gaps[:-1]))) if count else gaps


def schedule_hash(arrivals: Arrivals, count: int, seed: int, burstiness: float = 1.0) -> str:
    """The unit-rate schedule's digest (rates only scale it)."""
    return hashlib.sha256(unit_gaps(arrivals, count, seed, burstiness).tobytes()).hexdigest()
