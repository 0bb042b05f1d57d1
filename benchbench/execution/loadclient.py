"""The load client: sends a load point's requests on schedule and times them where they run.

Each client process runs one asyncio loop with one pool of keep-alive connections; a point's
requests are dealt round-robin over the processes (aiperf's workers are the model), so more
processes help when one cannot keep up. The loop uses ``select()``, whose timeout has
microsecond resolution (epoll's is a millisecond, which alone would make scheduling lag up to
1 ms). Every request records when it was due, when it was actually sent (the difference is the
client's scheduling lag, minus any wait for a ``max_in_flight`` slot, recorded apart), how many
requests were in flight across all processes at its send, its own deadline and how it ended.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import selectors
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Literal

from benchbench.backends.http_wire import Connection, ConnectionPool, HttpProtocolError, Origin, Response

Status = Literal["ok", "error", "timeout"]
STARTUP_S = 60


@dataclass
class Exchange:
    """One request as the client saw it; times are ``perf_counter_ns`` (one clock for all processes)."""

    index: int
    due_ns: int
    queued_ns: int = 0
    sent_ns: int = 0
    in_flight_at_send: int = 0
    head_ns: int | None = None
    done_ns: int = 0
    status: Status = "ok"
    message: str = ""
    http_status: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lag_ns(self) -> int:
        """Scheduling lag: how late the client sent it, not counting a wait for an in-flight slot."""
        return self.sent_ns - self.due_ns - self.queued_ns


@dataclass(frozen=True)
class WorkerPlan:
    """One process's share of a load point."""

    requests: list[tuple[int, bytes]]
    due_offsets_s: list[float] | None
    """open loop: seconds after t0 each request is due; None: closed loop, due when a slot frees"""
    slots: int | None
    deadline_s: float | None
    duration_s: float | None


class _Worker:
    def __init__(self, pool: ConnectionPool, in_flight, me: int):
        self.pool, self.in_flight, self.me = pool, in_flight, me

    async def run(self, plan: WorkerPlan, t0_ns: int) -> list[Exchange]:
        self.plan, self.t0_ns, self.done = plan, t0_ns, []
        self.stop_ns = t0_ns + int(plan.duration_s * 1e9) if plan.duration_s else None
        if plan.due_offsets_s is None:
            queue = iter(plan.requests)
            await asyncio.gather(*(self._slot(queue) for _ in range(plan.slots or 1)))
        else:
            await self._open_loop()
        return sorted(self.done, key=lambda exchange: exchange.index)

    async def _slot(self, queue) -> None:
        due = self.t0_ns
        for index, request in queue:
            if self.stop_ns and time.perf_counter_ns() > self.stop_ns:
                return
            await _sleep_until(due)
            exchange = Exchange(index, due)
            await self._finish(exchange, await self._send(exchange, request))
            due = exchange.done_ns

    async def _open_loop(self) -> None:
        cap = asyncio.Semaphore(self.plan.slots) if self.plan.slots else None
        cap_free_ns, tasks = 0, []
        for (index, request), offset in zip(self.plan.requests, self.plan.due_offsets_s or []):
            due = self.t0_ns + int(offset * 1e9)
            if self.stop_ns and due > self.stop_ns:
                break
            await _sleep_until(due)
            exchange = Exchange(index, due)
            if cap:
                if cap.locked():
                    await cap.acquire()
                    cap_free_ns = time.perf_counter_ns()
                else:
                    await cap.acquire()
                # time spent behind a full cap, by this request or an earlier one, is queueing, not lag
                exchange.queued_ns = max(0, cap_free_ns - due)
            sent = await self._send(exchange, request)
            tasks.append(asyncio.create_task(self._finish(exchange, sent, cap)))
        await asyncio.gather(*tasks)

    async def _send(self, exchange: Exchange, request: bytes) -> tuple[Connection | None, asyncio.Future | None]:
        """Write the request now (inline, so the send time is the scheduler's own)."""
        self.in_flight[self.me] += 1
        exchange.in_flight_at_send = sum(self.in_flight)
        try:
            connection = await self.pool.acquire()
            exchange.sent_ns = time.perf_counter_ns()
            return connection, connection.request(request, sse=True)
        except OSError as exc:
            exchange.sent_ns = exchange.sent_ns or time.perf_counter_ns()
            exchange.status, exchange.message = "error", _describe(exc)
            return None, None

    async def _finish(self, exchange: Exchange, sent, cap: asyncio.Semaphore | None = None) -> None:
        connection, future = sent
        response = Response()
        deadline = self.plan.deadline_s
        if future is not None:
            try:
                async with asyncio.timeout(deadline):
                    response = await future
            except TimeoutError:
                exchange.status, exchange.message = "timeout", f"no complete answer within {deadline:g} s"
            except (OSError, ValueError, HttpProtocolError) as exc:
                exchange.status, exchange.message = "error", _describe(exc)
        exchange.done_ns = time.perf_counter_ns()
        self.in_flight[self.me] -= 1
        if cap:
            cap.release()
        exchange.head_ns, exchange.events = response.head_ns or None, response.events
        exchange.http_status = response.status or None
        if exchange.status == "ok" and response.status != 200:
            exchange.status = "error"
            exchange.message = f"HTTP {response.status}: {response.body[:300].decode('utf-8', 'replace')}"
        if connection is not None:
            self.pool.release(connection, exchange.status == "ok" and response.reusable)
        self.done.append(exchange)


def _answer(pipe: Pipe) -> str:
    """A client process's first word: "ready", or why not."""
    try:
        return pipe.recv() if pipe.poll(STARTUP_S) else f"no answer within {STARTUP_S} s"
    except EOFError:
        return "the process ended"


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


async def _sleep_until(due_ns: int) -> None:
    """A plain sleep (``select()`` wakes within microseconds); spinning up to the due time would
    burn CPU that the engine under test, on the same machine, may need."""
    delay_ns = due_ns - time.perf_counter_ns()
    if delay_ns > 0:
        await asyncio.sleep(delay_ns / 1e9)


def _worker_main(pipe: Pipe, origin: Origin, connections: int, in_flight, me: int) -> None:
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    pool = ConnectionPool(origin)
    worker = _Worker(pool, in_flight, me)
    try:
        try:
            loop.run_until_complete(pool.prewarm(connections))
        except OSError as exc:
            pipe.send(f"cannot connect: {_describe(exc)}")
            return
        pipe.send("ready")
        while (plan := pipe.recv()) is not None:
            pipe.send("armed")  # the plan is unpacked; the start time comes next
            pipe.send(loop.run_until_complete(worker.run(plan, pipe.recv())))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        pool.close()
        loop.close()


class LoadClient:
    """``processes`` client processes, each with ``connections`` keep-alive connections opened up front."""

    def __init__(self, origin: Origin, processes: int = 1, connections: int = 64):
        self.origin = origin
        context = multiprocessing.get_context("fork")  # spawn would re-run the caller's main module
        self.in_flight = context.RawArray("q", processes)
        self._pipes: list[Pipe] = []
        self._processes = []
        per_process = -(-connections // processes)
        for me in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, origin, per_process, self.in_flight, me),
                                      daemon=True, name=f"benchbench-load-{me}")  # fmt: skip
            process.start()
            child.close()  # the process holds its end: a process that dies unannounced reads as EOF here
            self._pipes.append(parent)
            self._processes.append(process)
        for pipe in self._pipes:
            answer = _answer(pipe)
            if answer != "ready":
                self.close()
                raise OSError(f"load client process could not connect to {origin.url} ({answer})")

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def run_point(
        self,
        requests: Sequence[bytes],
        due_offsets_s: Sequence[float] | None,
        max_in_flight: int | None,
        deadline_s: float | None = None,
        duration_s: float | None = None,
    ) -> list[Exchange]:
        """Send every request (open loop when offsets are given, else closed loop at
        ``max_in_flight``) and return each one's exchange, in request order."""
        shares = self._shares(len(requests), max_in_flight)
        busy = []
        for pipe, (indices, slots) in zip(self._pipes, shares):
            if indices:
                offsets = None if due_offsets_s is None else [float(due_offsets_s[i]) for i in indices]
                pipe.send(WorkerPlan([(i, requests[i]) for i in indices], offsets, slots, deadline_s, duration_s))
                busy.append(pipe)
        for pipe in busy:
            pipe.recv()
        t0 = time.perf_counter_ns() + 20_000_000  # a margin for the start message to reach every process
        for pipe in busy:
            pipe.send(t0)
        exchanges = list(itertools.chain.from_iterable(pipe.recv() for pipe in busy))
        return sorted(exchanges, key=lambda exchange: exchange.index)

    def _shares(self, count: int, cap: int | None) -> list[tuple[list[int], int | None]]:
        """Round-robin requests over the processes; a cap (or concurrency) split so the sum holds."""
        workers = len(self._pipes) if cap is None else min(len(self._pipes), cap)
        shares = []
        for me in range(len(self._pipes)):
            slots = None if cap is None else cap // workers + (me < cap % workers)
            shares.append((list(range(me, count, workers)) if me < workers else [], slots))
        return shares

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self._pipes, self._processes = [], []

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
