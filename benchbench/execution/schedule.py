"""When requests are sent: a schedule drives the clock (``measure``) and hands each result to
the recorder (``record``). Serial is the one schedule today; concurrent and rate-limited ones
(driven by a load point's ``strategies.Strategy``: due times, requests in flight) plug in here
without touching how a request is timed (``measure.py``) or recorded (``recorder.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from benchbench.execution.measure import Measurement
from benchbench.workload.build import WorkloadRequest


@dataclass(frozen=True)
class Job:
    """One request to send, and which repeat of the measured list it belongs to."""

    request: WorkloadRequest
    repeat: int


Measure = Callable[[Job], Measurement]
Record = Callable[[Measurement], None]


class Schedule(Protocol):
    name: str

    def drive(self, jobs: Sequence[Job], measure: Measure, record: Record) -> None:
        """Send every job through ``measure`` and pass each measurement to ``record`` (thread-safe)."""


class Serial:
    """One request at a time, the next sent as soon as the previous one finished."""

    name = "serial"

    def drive(self, jobs: Sequence[Job], measure: Measure, record: Record) -> None:
        for job in jobs:
            record(measure(job))


SERIAL = Serial()
