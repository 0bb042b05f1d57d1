"""Runs a workload through each backend: load (timed), warmups (recorded, marked), measured
requests; times every phase with one clock and appends each record to disk as it finishes."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchbench.backends.base import Backend, BackendContext, parse_options
from benchbench.errors import BenchError
from benchbench.results.fairness import check_fairness
from benchbench.results.records import BackendOutcome, RecordSink, RequestRecord
from benchbench.backends.registry import backend_class
from benchbench.config.scenario import BackendSpec
from benchbench.workload.build import Workload, WorkloadRequest

OnRecord = Callable[[RequestRecord], None]
NS = 1e-9


class StreamClock:
    """The runner's clock as backends see it: each call stamps when tokens appeared."""

    def __init__(self, synchronize: Callable[[], None]):
        self._synchronize = synchronize
        self.marks: list[tuple[int, int]] = []

    def tokens(self, count: int = 1) -> None:
        self._synchronize()
        self.marks.append((time.perf_counter_ns(), count))


@dataclass(frozen=True)
class RunSettings:
    run_dir: Path
    model_path: Path
    dtype: str
    device: str | None
    seed: int
    trust_remote_code: bool = False


def measure_request(backend: Backend, request: WorkloadRequest, repeat: int) -> RequestRecord:
    """One request, timed: preprocessing, then generation from submission to the last token."""
    started_at = time.time()
    t0 = time.perf_counter_ns()
    prepared = backend.prepare(request)
    backend.synchronize()
    t1 = time.perf_counter_ns()
    clock = StreamClock(backend.synchronize)
    generation = backend.generate(prepared, clock)
    backend.synchronize()
    t2 = time.perf_counter_ns()

    ttft_s = decode_s = decode_tok_s = inter_token_s = None
    if clock.marks:
        first, last = clock.marks[0][0], clock.marks[-1][0]
        ttft_s = (first - t1) * NS
        decode_s = (last - first) * NS
        inter_token_s = _inter_token_gaps(clock.marks)
        if generation.output_tokens > 1 and decode_s > 0:
            decode_tok_s = (generation.output_tokens - clock.marks[0][1]) / decode_s
    capabilities = backend.capabilities
    return RequestRecord(
        backend=backend.context.name,
        backend_kind=backend.kind,
        phase=request.phase,
        request_id=request.request_id,
        turn=request.turn,
        repeat=repeat,
        started_at=started_at,
        max_tiles=request.tiling.max_num,
        tiles_planned=request.tiles_planned,
        tiles=generation.tiles,
        image_tokens_planned=request.image_tokens_planned,
        image_tokens=generation.image_tokens,
        input_tokens=generation.input_tokens,
        max_new_tokens=request.max_new_tokens,
        output_tokens=generation.output_tokens,
        preprocess_s=(t1 - t0) * NS,
        ttft_s=ttft_s,
        decode_s=decode_s,
        e2e_s=(t2 - t0) * NS,
        decode_tok_s=decode_tok_s,
        inter_token_s=inter_token_s,
        preprocess_in_ttft=capabilities.preprocesses_inside_engine,
        text=generation.text,
        token_ids=generation.token_ids,
        finish_reason=generation.finish_reason,
        fairness=check_fairness(request, generation, capabilities),
        details=generation.details,
    )


def _inter_token_gaps(marks: list[tuple[int, int]]) -> list[float]:
    """Per-token gaps; a chunk of k tokens spreads its gap over k tokens."""
    gaps = []
    for (previous, _), (current, count) in zip(marks, marks[1:]):
        gaps.extend([(current - previous) * NS / count] * count)
    return gaps


def run_backend(
    spec: BackendSpec,
    workload: Workload,
    settings: RunSettings,
    sink: RecordSink,
    on_record: OnRecord,
    on_loaded: Callable[[BackendOutcome], None] = lambda outcome: None,
    done: frozenset[tuple[str, int]] = frozenset(),
) -> BackendOutcome:
    """Everything for one backend; a failure ends this backend only, keeping its finished records.

    ``done`` holds (request_id, repeat) of measured requests already on disk (a resumed run);
    they are not run again. Warmups always run: a restarted engine is cold again.
    """
    outcome = BackendOutcome(name=spec.name, kind=spec.kind, options=spec.options, status="running")
    cls = backend_class(spec.kind)
    context = BackendContext(
        name=spec.name,
        model_path=settings.model_path,
        dtype=settings.dtype,
        device=settings.device,
        run_dir=settings.run_dir,
        seed=settings.seed,
        trust_remote_code=settings.trust_remote_code,
    )
    backend = cls(parse_options(cls, spec.options, spec.name), context)
    outcome.capabilities = vars(backend.capabilities)
    try:
        t0 = time.perf_counter_ns()
        outcome.load_info = backend.load()
        backend.synchronize()
        outcome.load_s = (time.perf_counter_ns() - t0) * NS
        on_loaded(outcome)
        for request in workload.warmup:
            _emit(measure_request(backend, request, repeat=0), sink, on_record)
        for repeat in range(workload.repeats):
            for request in workload.measured:
                if (request.request_id, repeat) not in done:
                    _emit(measure_request(backend, request, repeat), sink, on_record)
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
        backend.close()
    return outcome


def _emit(record: RequestRecord, sink: RecordSink, on_record: OnRecord) -> None:
    sink.append(record)
    on_record(record)
