"""When a load point's requests leave: the one schedule behind the HTTP load client and the
in-process async engines (LMDeploy's).

Closed loop: ``slots`` coroutines, each sending its next request the moment its last one ends.
Open loop: each request at its due time; under a cap (``slots``) a request that finds every slot
taken waits, and that wait is recorded as queueing, not as the scheduler's lag. A request is
started inline, so its send time is the scheduler's own, and awaited in a task of its own under
its own deadline. A ``Sender`` only starts requests and reads their answers; the times are here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, MutableSequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

Status = Literal["ok", "error", "timeout"]


@dataclass
class Release:
    """One request as the scheduler saw it; times are ``perf_counter_ns`` (one clock for all processes)."""

    index: int
    due_ns: int
    queued_ns: int = 0
    sent_ns: int = 0
    in_flight_at_send: int = 0
    done_ns: int = 0
    status: Status = "ok"
    message: str = ""

    @property
    def lag_ns(self) -> int:
        """Scheduling lag: how late it was sent, not counting a wait for an in-flight slot."""
        return self.sent_ns - self.due_ns - self.queued_ns


@dataclass(frozen=True)
class ReleasePlan:
    """Which requests to send (by index, in order) and on what schedule."""

    indices: list[int]
    due_offsets_s: list[float] | None
    """open loop: seconds after t0 each request is due; None: closed loop, due when a slot frees"""
    slots: int | None
    """closed loop: requests in flight; open loop: the cap (None: no cap)"""
    deadline_s: float | None
    duration_s: float | None


R = TypeVar("R", bound=Release)


class Sender(Protocol[R]):
    """Starts and reads one kind of request (an HTTP exchange, an engine call)."""

    failures: tuple[type[BaseException], ...]
    """exceptions that awaiting a request may raise and that make it an error, not a crash"""

    def release(self, index: int, due_ns: int) -> R: ...

    async def send(self, release: R) -> Awaitable[Any] | None:
        """Start the request now and stamp ``sent_ns``; None (status set) if it could not start."""

    def settle(self, release: R, answer: Any) -> None:
        """Read the answer (None after a timeout or failure) once ``done_ns`` is stamped."""


class Scheduler(Generic[R]):
    """Runs plans through a sender; ``in_flight[me]`` is this scheduler's count, the sum the total."""

    def __init__(self, sender: Sender[R], in_flight: MutableSequence[int] | None = None, me: int = 0):
        self.sender, self.in_flight, self.me = sender, in_flight if in_flight is not None else [0], me

    async def run(self, plan: ReleasePlan, t0_ns: int) -> list[R]:
        """Every request of the plan, returned in index order."""
        self.plan, self.t0_ns, self.done = plan, t0_ns, []
        self.stop_ns = t0_ns + int(plan.duration_s * 1e9) if plan.duration_s else None
        if plan.due_offsets_s is None:
            queue = iter(plan.indices)
            await asyncio.gather(*(self._slot(queue) for _ in range(plan.slots or 1)))
        else:
            await self._open_loop()
        return sorted(self.done, key=lambda release: release.index)

    async def _slot(self, queue) -> None:
        due = self.t0_ns
        for index in queue:
            if self.stop_ns and time.perf_counter_ns() > self.stop_ns:
                return
            await sleep_until(due)
            release = self.sender.release(index, due)
            await self._finish(release, await self._send(release))
            due = release.done_ns

    async def _open_loop(self) -> None:
        cap = asyncio.Semaphore(self.plan.slots) if self.plan.slots else None
        cap_free_ns, tasks = 0, []
        for index, offset in zip(self.plan.indices, self.plan.due_offsets_s or []):
            due = self.t0_ns + int(offset * 1e9)
            if self.stop_ns and due > self.stop_ns:
                break
            await sleep_until(due)
            release = self.sender.release(index, due)
            if cap:
                if cap.locked():
                    await cap.acquire()
                    cap_free_ns = time.perf_counter_ns()
                else:
                    await cap.acquire()
                # time spent behind a full cap, by this request or an earlier one, is queueing, not lag
                release.queued_ns = max(0, cap_free_ns - due)
            pending = await self._send(release)
            tasks.append(asyncio.create_task(self._finish(release, pending, cap)))
        await asyncio.gather(*tasks)

    async def _send(self, release: R) -> Awaitable[Any] | None:
        self.in_flight[self.me] += 1
        release.in_flight_at_send = sum(self.in_flight)
        return await self.sender.send(release)

    async def _finish(self, release: R, pending: Awaitable[Any] | None, cap: asyncio.Semaphore | None = None) -> None:
        answer, deadline = None, self.plan.deadline_s
        if pending is not None:
            try:
                async with asyncio.timeout(deadline):
                    answer = await pending
            except TimeoutError:
                release.status, release.message = "timeout", f"no complete answer within {deadline:g} s"
            except self.sender.failures as exc:
                release.status, release.message = "error", describe(exc)
        release.done_ns = time.perf_counter_ns()
        self.in_flight[self.me] -= 1
        if cap:
            cap.release()
        self.sender.settle(release, answer)
        self.done.append(release)


def describe(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters, for a record's message."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


async def sleep_until(due_ns: int) -> None:
    """A plain sleep (``select()`` wakes within microseconds); spinning up to the due time would
    burn CPU that the engine under test, on the same machine, may need."""
    delay_ns = due_ns - time.perf_counter_ns()
    if delay_ns > 0:
        await asyncio.sleep(delay_ns / 1e9)
