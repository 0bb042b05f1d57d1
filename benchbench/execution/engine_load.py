"""A load point through an in-process engine that serves many requests at once from its own
asyncio loop (LMDeploy's pipeline): the release schedule (``execution/release.py``, the HTTP load
client's) runs on that loop, each request is a task of its own (the backend's ``generate_async``),
and token marks are stamped on the loop as the engine's outputs arrive.

Requests are prepared before the point, untimed, as the HTTP client renders its bodies, so a
request's times count from its release, like a request sent over HTTP. The engine queues what it
cannot hold at once (LMDeploy: a pool of ``max_batch_size`` request handles); that wait is part
of the request's TTFT, as with a server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchbench.backends.base import Backend, Generation
from benchbench.execution.inprocess_load import LoadJob, ServedRequest, TokenMarks
from benchbench.execution.release import Release, ReleasePlan, Scheduler
from benchbench.execution.strategies import Strategy


@dataclass
class EngineCall(Release):
    """One request as the engine served it: its release, token marks, and what it produced."""

    marks: list[tuple[int, int]] = field(default_factory=list)
    generation: Generation | None = None


class _EngineSender:
    """Starts each request as a task on the engine's loop (the scheduler's ``Sender``)."""

    failures = (Exception,)  # one request's engine failure is that request's error, as lmdeploy's pipeline treats it

    def __init__(self, backend: Backend, prepared: Sequence[Any]):
        self.backend, self.prepared = backend, prepared

    def release(self, index: int, due_ns: int) -> EngineCall:
        return EngineCall(index, due_ns)

    async def send(self, call: EngineCall) -> asyncio.Task:
        timer = TokenMarks(self.backend.synchronize)
        call.marks = timer.marks
        call.sent_ns = time.perf_counter_ns()
        return asyncio.create_task(self.backend.generate_async(self.prepared[call.index], timer))

    def settle(self, call: EngineCall, generation: Generation | None) -> None:
        call.generation = generation


def serve_on_engine_loop(
    backend: Backend, jobs: Sequence[LoadJob], strategy: Strategy, seed: int, duration_s: float | None = None
) -> list[ServedRequest]:
    """Every job released on the strategy's schedule onto the backend's engine loop; blocks until done."""
    prepared = _prepared_once(backend, jobs)
    offsets = strategy.due_offsets(len(jobs), seed)
    plan = ReleasePlan(
        list(range(len(jobs))), None if offsets is None else [float(offset) for offset in offsets],
        strategy.max_in_flight, backend.context.request_timeout_s, duration_s,
    )  # fmt: skip
    scheduler = Scheduler(_EngineSender(backend, prepared))

    async def run() -> list[EngineCall]:
        return await scheduler.run(plan, time.perf_counter_ns())

    future = asyncio.run_coroutine_threadsafe(run(), backend.engine_loop())
    try:
        calls = future.result()
    except BaseException:
        future.cancel()  # an interrupted point leaves no request running on the engine's loop
        raise
    return [ServedRequest.released(jobs[call.index], call, call.marks, call.generation) for call in calls]


def _prepared_once(backend: Backend, jobs: Sequence[LoadJob]) -> list[Any]:
    """Each job's prepared request; a request repeated in the list (a duration point cycles over
    the workload) is prepared once (``generate_async`` leaves what it is given unchanged)."""
    by_request: dict[int, Any] = {}
    for job in jobs:
        if id(job.request) not in by_request:
            by_request[id(job.request)] = backend.prepare(job.request)
    return [by_request[id(job.request)] for job in jobs]
