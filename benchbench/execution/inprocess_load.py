"""A load point through an in-process engine: requests arrive on the strategy's schedule, wait
while the engine is busy, and are served in batches as large as the backend declares.

The engine blocks while it generates, so this is a single-server queue: a request's TTFT and E2E
count from when it was due (its arrival), the wait for the engine included, as a user would see
them; ``queued_ns`` says how much of that was waiting. A static batch finishes together; a
backend without batching serves one request at a time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchbench.backends.base import Backend, Generation
from benchbench.execution.release import Release
from benchbench.execution.strategies import Strategy
from benchbench.workload.build import WorkloadRequest


@dataclass(frozen=True)
class LoadJob:
    request: WorkloadRequest
    repeat: int


@dataclass(frozen=True)
class ServedRequest:
    """Raw clock readings (perf_counter ns) of one request served under load."""

    job: LoadJob
    due_ns: int
    start_ns: int
    """preprocessing began (the engine took the request)"""
    submitted_ns: int
    """the batch went into the engine"""
    end_ns: int
    marks: tuple[tuple[int, int], ...]
    generation: Generation
    batch_size: int | None
    timed_from_send: bool = False
    """released by the load scheduler (HTTP client, async engine): timed from its send, not from when it was due"""
    lag_ns: int | None = None
    cap_wait_ns: int = 0
    first_byte_ns: int | None = None
    in_flight: int | None = None
    status: str = "ok"
    message: str = ""

    @property
    def arrival_ns(self) -> int:
        """Where the request's time starts: its send (HTTP), or its due time (in process)."""
        return self.start_ns if self.timed_from_send else self.due_ns

    @property
    def queued_ns(self) -> int:
        return self.cap_wait_ns if self.timed_from_send else self.start_ns - self.due_ns

    @classmethod
    def released(
        cls, job: LoadJob, release: Release, marks, generation: Generation | None,
        status: str | None = None, message: str | None = None, first_byte_ns: int | None = None,
    ) -> ServedRequest:  # fmt: skip
        """A request the load scheduler released (``execution/release.py``), prepared before the point."""
        return cls(
            job, release.due_ns, release.sent_ns, release.sent_ns, release.done_ns, tuple(marks),
            generation or Generation(text="", output_tokens=0), None, timed_from_send=True, lag_ns=release.lag_ns,
            cap_wait_ns=release.queued_ns, first_byte_ns=first_byte_ns, in_flight=release.in_flight_at_send,
            status=status or release.status, message=release.message if message is None else message,
        )  # fmt: skip


class TokenMarks:
    """A token timer for one request served under load: (time, tokens) as the engine emits them."""

    def __init__(self, synchronize: Callable[[], None]):
        self._synchronize, self.marks = synchronize, []

    def tokens(self, count: int = 1) -> None:
        self._synchronize()
        self.marks.append((time.perf_counter_ns(), count))


def serve_point(
    backend: Backend, jobs: Sequence[LoadJob], strategy: Strategy, seed: int, duration_s: float | None = None
) -> list[ServedRequest]:
    """Every job through the engine on the strategy's schedule; results in completion order."""
    batch_limit = backend.concurrency.max_in_flight or 1
    slots = strategy.max_in_flight
    offsets = strategy.due_offsets(len(jobs), seed)
    t0 = time.perf_counter_ns()
    stop = t0 + int(duration_s * 1e9) if duration_s else None
    upcoming = deque(jobs)
    arrived: deque[tuple[LoadJob, int]] = deque()
    served: list[ServedRequest] = []
    in_system = 0
    while upcoming or arrived:
        now = time.perf_counter_ns()
        if offsets is None:  # closed loop: a job is due as soon as a slot is free
            while upcoming and in_system < (slots or 1) and not (stop and now > stop):
                arrived.append((upcoming.popleft(), now))
                in_system += 1
        else:
            while upcoming and t0 + int(offsets[len(jobs) - len(upcoming)] * 1e9) <= now:
                index = len(jobs) - len(upcoming)
                arrived.append((upcoming.popleft(), t0 + int(offsets[index] * 1e9)))
        if stop and now > stop and offsets is not None:
            upcoming.clear()
        if not arrived:
            if not upcoming:
                break
            next_due = t0 + int(offsets[len(jobs) - len(upcoming)] * 1e9) if offsets is not None else now
            time.sleep(max(0, next_due - time.perf_counter_ns()) / 1e9)
            continue
        take = min(len(arrived), batch_limit, slots or batch_limit)
        batch = [arrived.popleft() for _ in range(take)]
        served.extend(_serve_batch(backend, batch))
        in_system -= take if offsets is None else 0
    return served


def _serve_batch(backend: Backend, batch: list[tuple[LoadJob, int]]) -> list[ServedRequest]:
    start = time.perf_counter_ns()
    prepared = [backend.prepare(job.request) for job, _ in batch]
    backend.synchronize()
    submitted = time.perf_counter_ns()
    timers = [TokenMarks(backend.synchronize) for _ in batch]
    if len(batch) == 1:
        generations = [backend.generate(prepared[0], timers[0])]
    else:
        generations = backend.generate_batch(prepared, timers)
    backend.synchronize()
    end = time.perf_counter_ns()
    return [
        ServedRequest(job, due, start, submitted, end, tuple(timer.marks), generation, len(batch))
        for (job, due), timer, generation in zip(batch, timers, generations)
    ]


def prepared_once(backend: Backend, jobs: Sequence[LoadJob]) -> list[Any]:
    """Each job's prepared request, before the point; a request repeated in the list (a duration
    point cycles over the workload, up to its request bound) is prepared once: a prepared request
    is only read when sent (an engine's ``generate_async``, the load client's rendered bytes)."""
    by_request: dict[int, Any] = {}
    for job in jobs:
        if id(job.request) not in by_request:
            by_request[id(job.request)] = backend.prepare(job.request)
    return [by_request[id(job.request)] for job in jobs]
