"""The load client: sends a load point's requests on schedule and times them where they run.

Each client process runs one asyncio loop with one pool of keep-alive connections; a point's
requests are dealt round-robin over the processes (aiperf's workers are the model), so more
processes help when one cannot keep up. The loop uses ``select()``, whose timeout has
microsecond resolution (epoll's is a millisecond, which alone would make scheduling lag up to
1 ms). Every request records when it was due, when it was actually sent (the difference is the
client's scheduling lag, minus any wait for a ``max_in_flight`` slot, recorded apart), how many
requests were in flight across all processes at its send, its own deadline and how it ended.
The schedule itself is ``execution/release.py``'s (shared with in-process async engines); this
module is the HTTP side of it: processes, kept-alive connections, what each exchange brought back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import multiprocessing
import selectors
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe

from benchbench.backends.http_wire import ConnectionPool, HttpProtocolError, Origin, Response
from benchbench.execution.release import Release, ReleasePlan, Scheduler, describe

STARTUP_S = 60
PR_SET_TIMERSLACK = 29


@dataclass
class Exchange(Release):
    """One HTTP request as the client saw it: its release, then what came back."""

    head_ns: int | None = None
    http_status: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerPlan:
    """One process's share of a load point."""

    requests: dict[int, bytes]
    schedule: ReleasePlan


class _HttpSender:
    """Sends rendered requests over the pool's kept-alive connections (the scheduler's ``Sender``)."""

    failures = (OSError, ValueError, HttpProtocolError)

    def __init__(self, pool: ConnectionPool):
        self.pool, self.requests, self.connections = pool, {}, {}

    def release(self, index: int, due_ns: int) -> Exchange:
        return Exchange(index, due_ns)

    async def send(self, exchange: Exchange) -> asyncio.Future | None:
        """Write the request now (inline, so the send time is the scheduler's own)."""
        try:
            connection = await self.pool.acquire()
            exchange.sent_ns = time.perf_counter_ns()
            self.connections[exchange.index] = connection
            return connection.request(self.requests.pop(exchange.index), sse=True)
        except OSError as exc:
            exchange.sent_ns = exchange.sent_ns or time.perf_counter_ns()
            exchange.status, exchange.message = "error", describe(exc)
            return None

    def settle(self, exchange: Exchange, response: Response | None) -> None:
        response = response or Response()
        exchange.head_ns, exchange.events = response.head_ns or None, response.events
        exchange.http_status = response.status or None
        if exchange.status == "ok" and response.status != 200:
            exchange.status = "error"
            exchange.message = f"HTTP {response.status}: {response.body[:300].decode('utf-8', 'replace')}"
        connection = self.connections.pop(exchange.index, None)
        if connection is not None:
            self.pool.release(connection, exchange.status == "ok" and response.reusable)


def _answer(pipe: Pipe) -> str:
    """A client process's first word: "ready", or why not."""
    try:
        return pipe.recv() if pipe.poll(STARTUP_S) else f"no answer within {STARTUP_S} s"
    except EOFError:
        return "the process ended"


def _worker_main(pipe: Pipe, origin: Origin, connections: int, in_flight, me: int) -> None:
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    pool = ConnectionPool(origin)
    sender = _HttpSender(pool)
    scheduler = Scheduler(sender, in_flight, me)
    try:
        try:
            loop.run_until_complete(pool.prewarm(connections))
        except OSError as exc:
            pipe.send(f"cannot connect: {describe(exc)}")
            return
        pipe.send("ready")
        _precise_timers()
        while (plan := pipe.recv()) is not None:
            sender.requests = dict(plan.requests)
            pipe.send("armed")  # the plan is unpacked; the start time comes next
            t0_ns = pipe.recv()
            with _no_collector_pauses():
                exchanges = loop.run_until_complete(scheduler.run(plan.schedule, t0_ns))
            pipe.send(exchanges)
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        pool.close()
        loop.close()


def _precise_timers() -> None:
    """Timer slack down from Linux's default 50 us to 1 ns, so a sleep ends when it was asked to."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the platform's timers as they are
        pass


@contextlib.contextmanager
def _no_collector_pauses():
    """No cyclic garbage collection during a point: a full collection over thousands of live
    exchanges pauses the loop for milliseconds, which would land in the lag and in every stamp.
    The client process does nothing else; the point's objects are freed by reference counting."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


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
                schedule = ReleasePlan(indices, offsets, slots, deadline_s, duration_s)
                pipe.send(WorkerPlan({i: requests[i] for i in indices}, schedule))
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
