"""A load point through an in-process engine that serves many requests at once from its own
asyncio loop (LMDeploy's pipeline): the release schedule (``execution/release.py``, the HTTP load
client's) hands each request to that loop as a task of its own (the backend's ``generate_async``),
and token marks are stamped there as the engine's outputs arrive.

Requests are prepared before the point, untimed, as the HTTP client renders its bodies, so a
request's times count from its release, like a request sent over HTTP. The engine queues what it
cannot hold at once (LMDeploy: a pool of ``max_batch_size`` request handles); that wait is part
of the request's TTFT, as with a server.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchbench.backends.base import Backend, Generation
from benchbench.execution.inprocess_load import LoadJob, ServedRequest, TokenMarks, prepared_once
from benchbench.execution.release import Release, ReleasePlan, Scheduler
from benchbench.execution.strategies import Strategy


@dataclass
class EngineCall(Release):
    """One request as the engine served it: its release, token marks, and what it produced."""

    marks: list[tuple[int, int]] = field(default_factory=list)
    generation: Generation | None = None


class _EngineSender:
    """Hands each request to the engine's loop as a task of its own (the scheduler's ``Sender``)."""

    failures = (Exception,)  # one request's engine failure is that request's error, as lmdeploy's pipeline treats it

    def __init__(self, backend: Backend, prepared: Sequence[Any]):
        self.backend, self.prepared, self.engine_loop = backend, prepared, backend.engine_loop()
        self.started: set[asyncio.Task] = set()
        """the requests' tasks on the engine's loop (touched on that loop only)"""

    def release(self, index: int, due_ns: int) -> EngineCall:
        return EngineCall(index, due_ns)

    async def send(self, call: EngineCall) -> asyncio.Future:
        timer = TokenMarks(self.backend.synchronize)
        call.marks = timer.marks
        call.sent_ns = time.perf_counter_ns()
        running = asyncio.run_coroutine_threadsafe(self._on_engine(self.prepared[call.index], timer), self.engine_loop)
        return asyncio.wrap_future(running)  # cancelled at its deadline, it cancels the engine's task

    async def _on_engine(self, prepared: Any, timer: TokenMarks) -> Generation:
        self.started.add(asyncio.current_task())
        return await self.backend.generate_async(prepared, timer)

    def settle(self, call: EngineCall, generation: Generation | None) -> None:
        call.generation = generation

    async def drain(self) -> None:
        """On the engine's loop: cancel what still runs there (a point cut short) and wait, within
        a bound, until the engine has let go of every request, so the next point starts clean."""
        running = [task for task in self.started if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=DRAIN_TIMEOUT_S)


DRAIN_TIMEOUT_S = 30.0


def serve_on_engine_loop(
    backend: Backend, jobs: Sequence[LoadJob], strategy: Strategy, seed: int, duration_s: float | None = None
) -> list[ServedRequest]:
    """Every job released on the strategy's schedule onto the backend's engine loop; blocks until done.

    The scheduler runs on a loop of its own in this thread (``select()``: microsecond timers, where
    the engine's epoll loop rounds to milliseconds), so its lag is the scheduler's alone and time
    the engine's loop takes to pick a request up counts in that request's TTFT, as a server's would."""
    prepared = prepared_once(backend, jobs)
    offsets = strategy.due_offsets(len(jobs), seed)
    plan = ReleasePlan(
        list(range(len(jobs))), None if offsets is None else [float(offset) for offset in offsets],
        strategy.max_in_flight, backend.context.request_timeout_s, duration_s,
    )  # fmt: skip
    sender = _EngineSender(backend, prepared)
    scheduler = Scheduler(sender)

    async def run() -> list[EngineCall]:
        return await scheduler.run(plan, time.perf_counter_ns())

    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        calls = loop.run_until_complete(run())
    finally:
        loop.close()
        asyncio.run_coroutine_threadsafe(sender.drain(), sender.engine_loop).result(DRAIN_TIMEOUT_S + 5)
    return [ServedRequest.released(jobs[call.index], call, call.marks, call.generation) for call in calls]

