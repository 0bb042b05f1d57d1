"""A backend through every load point of a scenario: per point, its own warmups at the point's
load (so the first N requests' cold start stays out), then its measured requests; a sweep's
rates are chosen from its serial and throughput points as they finish.

Each request becomes a record like any other, with its ``load`` fields: the point, when it was
due and sent, how long it queued, how many were in flight, its status and whether it met the SLO.
Times count from the request's arrival (its send where the load scheduler released it, over HTTP
or onto an async engine's loop; else its due time), so a TTFT under load includes the wait for
the engine, as a user would see it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchbench.backends.base import Backend, ServedOverHttp
from benchbench.config.load import LoadPoint, LoadSpec, SloSpec
from benchbench.execution.engine_load import serve_on_engine_loop
from benchbench.execution.inprocess_load import LoadJob, ServedRequest, prepared_once, serve_point
from benchbench.execution.loadclient import Exchange, LoadClient
from benchbench.execution.measure import Measurement
from benchbench.execution.strategies import SweepProfile, strategy_for
from benchbench.results.load import by_point, meets_slo
from benchbench.results.metrics import aggregate, by_repeat, time_per_output_token_s
from benchbench.results.records import LoadFields, RequestRecord
from benchbench.workload.build import Workload, WorkloadRequest


@dataclass(frozen=True)
class LoadMeasurement:
    """A served request and its point; ``record`` runs on the recorder's thread, off the clock."""

    backend: Backend
    point: LoadPoint
    served: ServedRequest
    t0_ns: int
    wall_at_t0: float
    slo: SloSpec | None

    def record(self) -> RequestRecord:
        served, job = self.served, self.served.job
        prep_ns, arrival = served.submitted_ns - served.start_ns, served.arrival_ns
        base = Measurement(
            self.backend.context.name, self.backend.kind, self.backend.capabilities, job.request, job.repeat,
            self.wall_at_t0 + (arrival - self.t0_ns) / 1e9, arrival, arrival + prep_ns,
            served.end_ns, served.marks, served.generation,
        ).record()  # fmt: skip
        record = base.model_copy(update={"load": self._fields(served)})
        if self.slo is not None:
            within = meets_slo(record.ttft_s, time_per_output_token_s(record), self.slo.ttft_p99_s, self.slo.tpot_p99_s)
            record.load.within_slo = within
        return record

    def _fields(self, served: ServedRequest) -> LoadFields:
        since = lambda ns: (ns - self.t0_ns) / 1e9  # noqa: E731
        return LoadFields(
            point=self.point.label, point_kind=self.point.kind, point_value=self.point.value,
            due_s=since(served.due_ns), sent_s=since(served.arrival_ns), queue_s=served.queued_ns / 1e9,
            lag_s=None if served.lag_ns is None else served.lag_ns / 1e9,
            first_byte_s=None if served.first_byte_ns is None else (served.first_byte_ns - served.start_ns) / 1e9,
            in_flight_at_send=served.in_flight or served.batch_size or 1, batch_size=served.batch_size,
            status=served.status, message=served.message,
        )  # fmt: skip


def run_workload_load(backend: Backend, workload: Workload, record: Callable[[LoadMeasurement], None],
                      earlier: Sequence[RequestRecord] = ()) -> list[LoadPoint]:  # fmt: skip
    """The workload's load plan (its points, SLO and seed) through one backend; a resumed run passes
    the backend's records so far (``earlier``) and its finished points are not run again."""
    plan = workload.load or {}
    slo = SloSpec.model_validate(plan["slo"]) if plan.get("slo") else None
    spec = LoadSpec.model_validate(plan["spec"])
    if backend.engine_loop() is not None:
        return run_load_points(backend, workload, spec, slo, plan["seed"], record, serve_on_engine_loop, earlier)
    if backend.concurrency.batching != "server":
        return run_load_points(backend, workload, spec, slo, plan["seed"], record, serve_point, earlier)
    if not isinstance(backend, ServedOverHttp):
        raise TypeError(f"backend kind {backend.kind}: batching 'server' needs the ServedOverHttp hooks (backends/base.py)")
    connections = min(256, max([*(spec.concurrency or []), spec.max_in_flight or 0, 16]))
    with LoadClient(backend.load_origin(), processes=plan.get("client_processes", 1), connections=connections) as client:
        serve = HttpServer(backend, client)
        return run_load_points(backend, workload, spec, slo, plan["seed"], record, serve, earlier)


def run_load_points(
    backend: Backend, workload: Workload, spec: LoadSpec, slo: SloSpec | None, seed: int,
    record: Callable[[LoadMeasurement], None], serve=serve_point, earlier: Sequence[RequestRecord] = (),
) -> list[LoadPoint]:  # fmt: skip
    """Every point of the spec for this backend; returns the points it ran or had finished (a sweep's
    included). A point ``earlier`` records finished is skipped; an unfinished one runs again from its
    start (its earlier records are superseded: ``records.standing``)."""
    count, warmup = len(workload.measured), len(workload.warmup)
    points = spec.points(count, warmup)
    finished = finished_points(earlier, workload, spec)
    ran: list[LoadPoint] = []
    achieved: dict[str, float] = {}
    while points:
        point = points.pop(0)
        if point.label in finished:
            achieved[point.kind] = finished[point.label]
        else:
            achieved[point.kind] = _run_point(backend, workload, point, slo, seed, record, serve)
        ran.append(point)
        if spec.mode == "sweep" and point.kind == "throughput":
            points = SweepProfile(spec, spec.sweep or 1).rate_points(achieved["serial"], achieved["throughput"], count, warmup)
    return ran


def finished_points(earlier: Sequence[RequestRecord], workload: Workload, spec: LoadSpec) -> dict[str, float]:
    """Points of an earlier session that finished, with their achieved requests/s (the registry's
    ``req_s``; a sweep's rates follow from it). A point finished when every repeat holds all its
    measured requests, or when a later point has records (points run in order); a point measured
    for a duration has no count to check, so the last one recorded runs again."""
    points = by_point(earlier)
    finished = {}
    for index, (label, records) in enumerate(points.items()):
        repeats = by_repeat(records)
        counted = spec.duration_s is None and all(
            len(repeats.get(repeat, [])) >= len(workload.measured_for(repeat)) for repeat in range(workload.repeats))
        if counted or index < len(points) - 1:
            finished[label] = aggregate(records)["req_s"] or 0.0
    return finished


def _run_point(backend: Backend, workload: Workload, point: LoadPoint, slo: SloSpec | None, seed: int, record, serve) -> float:
    """Warmups (recorded, marked) at the point's load, then each repeat of the measured requests,
    timed apart; returns the measured requests per second (mean over repeats)."""
    strategy = strategy_for(point)
    runs = [(_cycled(workload.warmup, point.warmup), None)]
    runs += [(_jobs(workload.measured_for(repeat), repeat, point.duration_s), point.duration_s)
             for repeat in range(workload.repeats)]
    rates = []
    for jobs, duration_s in runs:
        if not jobs:
            continue
        t0_ns, wall = time.perf_counter_ns(), time.time()
        served = serve(backend, jobs, strategy, seed, duration_s)
        for item in served:
            record(LoadMeasurement(backend, point, item, t0_ns, wall, slo))
        span_s = (max(s.end_ns for s in served) - min(s.arrival_ns for s in served)) / 1e9 if served else 0.0
        if jobs[0].request.phase == "measure" and span_s > 0:  # answered requests, as the registry's req_s
            rates.append(sum(s.status == "ok" for s in served) / span_s)
    return sum(rates) / len(rates) if rates else 0.0


def _cycled(requests: Sequence[WorkloadRequest], count: int) -> list[LoadJob]:
    """``count`` jobs cycling over the requests; each pass over the list is one repeat."""
    if not requests:
        return []
    cycled = itertools.islice(itertools.cycle(requests), count)
    return [LoadJob(request, index // len(requests)) for index, request in enumerate(cycled)]


def _jobs(requests: Sequence[WorkloadRequest], repeat: int, duration_s: float | None) -> list[LoadJob]:
    """The measured list once; for a point with a duration, enough passes to fill it (cut at the end)."""
    if duration_s is None:
        return [LoadJob(request, repeat) for request in requests]
    return [LoadJob(job.request, repeat) for job in _cycled(requests, MAX_DURATION_REQUESTS)]


MAX_DURATION_REQUESTS = 100_000


class HttpServer:
    """Serves a point's jobs through the load client: requests prepared and rendered before the
    point (untimed), sent on the strategy's schedule, each answer parsed by the backend after it."""

    def __init__(self, backend: ServedOverHttp, client: LoadClient):
        self.backend, self.client = backend, client

    def __call__(self, backend: Backend, jobs: Sequence[LoadJob], strategy, seed: int, duration_s: float | None) -> list[ServedRequest]:
        prepared = prepared_once(backend, jobs)
        bodies = [p.request for p in prepared]
        offsets = strategy.due_offsets(len(jobs), seed)
        deadline_s = self.backend.load_deadline_s()
        exchanges = self.client.run_point(bodies, offsets, strategy.max_in_flight, deadline_s, duration_s)
        return [self._served(jobs[e.index], prepared[e.index], e) for e in exchanges]

    def _served(self, job: LoadJob, prepared, exchange: Exchange) -> ServedRequest:
        status, message, marks, generation = exchange.status, exchange.message, [], None
        if status == "ok":
            try:
                generation, marks = self.backend.generation_from_events(prepared, exchange.events)
            except ValueError as exc:
                status, message = "error", f"unreadable stream: {exc}"[:300]
        return ServedRequest.released(job, exchange, marks, generation, status, message, first_byte_ns=exchange.head_ns)
