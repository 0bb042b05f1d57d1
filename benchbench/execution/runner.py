"""One backend through a workload: load (timed), calibrate (untimed), warmups (recorded, marked),
then the measured requests as the schedule sends them; each record reaches disk as it finishes."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchbench.backends.base import Backend, BackendContext, parse_options
from benchbench.backends.registry import backend_class
from benchbench.config.scenario import BackendSpec
from benchbench.errors import BenchError
from benchbench.execution.load_runner import run_workload_load
from benchbench.execution.measure import NS, measure_request
from benchbench.execution.recorder import OnRecord, Recorder
from benchbench.execution.resources import ResourceSampler
from benchbench.execution.schedule import SERIAL, Job, Schedule
from benchbench.results.records import BackendOutcome, RecordSink, RequestRecord
from benchbench.workload.build import Workload


@dataclass(frozen=True)
class RunSettings:
    run_dir: Path
    model_path: Path
    dtype: str
    device: str | None
    seed: int
    trust_remote_code: bool = False
    request_timeout_s: float | None = None
    load_timeout_s: float | None = None
    sample_resources: bool = True


def run_backend(
    spec: BackendSpec,
    workload: Workload,
    settings: RunSettings,
    sink: RecordSink,
    on_record: OnRecord,
    on_loaded: Callable[[BackendOutcome], None] = lambda outcome: None,
    earlier: Sequence[RequestRecord] = (),
    schedule: Schedule = SERIAL,
) -> BackendOutcome:
    """Everything for one backend; a failure ends this backend only, keeping its finished records.

    ``earlier`` holds this backend's records already on disk (a resumed run): a serial run skips
    its finished measured requests, a load run its finished points. Warmups always run, one at a
    time: a restarted engine is cold again.
    """
    outcome = BackendOutcome(name=spec.name, kind=spec.kind, options=spec.options, status="running")
    backend = _make_backend(spec, settings)
    outcome.capabilities = vars(backend.capabilities)
    serving = ResourceSampler("serve", into=outcome.resources, enabled=settings.sample_resources)
    recorder = Recorder(sink, on_record, annotate=serving.annotate)
    try:
        with ResourceSampler("load", into=outcome.resources, enabled=settings.sample_resources):
            t0 = time.perf_counter_ns()
            outcome.load_info = backend.load()
            backend.synchronize()
            outcome.load_s = (time.perf_counter_ns() - t0) * NS
        outcome.load_info["concurrency"] = vars(backend.concurrency)
        backend.calibrate(workload.requests)
        on_loaded(outcome)
        if workload.load is not None:  # load points bring their own warmups and schedules
            with serving:
                run_workload_load(backend, workload, recorder.record, earlier)
                recorder.finish()
            outcome.status = "ok"
            return outcome

        def measure(job: Job):
            return measure_request(backend, job.request, job.repeat)

        done = {(r.request_id, r.repeat) for r in earlier if r.phase == "measure"}
        with serving:
            SERIAL.drive([Job(request, 0) for request in workload.warmup], measure, recorder.record)
            measured = [Job(request, repeat) for repeat in range(workload.repeats) for request in workload.measured_for(repeat)
                        if (request.request_id, repeat) not in done]
            schedule.drive(measured, measure, recorder.record)
            recorder.finish()
        outcome.status = "ok"
    except BenchError as exc:
        outcome.status, outcome.error = "failed", str(exc)
        outcome.log_tail = getattr(exc, "log_tail", [])  # a launched server's last log lines
    except Exception as exc:  # an engine crash must not cost the other backends' results
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0]
        log_path = settings.run_dir / f"{spec.name}.error.log"
        log_path.write_text(traceback.format_exc(), encoding="utf-8")
        outcome.log_tail = traceback.format_exc().strip().splitlines()[-5:]
    finally:
        recorder.close()
        backend.close()
    return outcome


def _make_backend(spec: BackendSpec, settings: RunSettings) -> Backend:
    cls = backend_class(spec.kind)
    context = BackendContext(
        name=spec.name,
        model_path=settings.model_path,
        dtype=settings.dtype,
        device=settings.device,
        run_dir=settings.run_dir,
        seed=settings.seed,
        trust_remote_code=settings.trust_remote_code,
        request_timeout_s=settings.request_timeout_s,
        load_timeout_s=settings.load_timeout_s,
    )
    return cls(parse_options(cls, spec.options, spec.name), context)
