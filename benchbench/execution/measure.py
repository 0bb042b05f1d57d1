"""The clock: one request timed (preprocessing, TTFT, decode) and nothing else on the timed path.

``measure_request`` keeps only raw clock readings and the engine's answer; building, checking
and writing the record happens later (``Measurement.record``, on the recorder's thread), so the
harness's own work never sits between two requests of a throughput span.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchbench.backends.base import Backend, Capabilities, Generation
from benchbench.results.fairness import check_fairness
from benchbench.results.records import RequestRecord
from benchbench.workload.build import WorkloadRequest

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
class Measurement:
    """Raw clock readings of one request (perf_counter ns) and what the engine returned."""

    backend: str
    backend_kind: str
    capabilities: Capabilities
    request: WorkloadRequest
    repeat: int
    started_at: float
    start_ns: int
    submitted_ns: int
    end_ns: int
    marks: tuple[tuple[int, int], ...]
    generation: Generation

    def record(self) -> RequestRecord:
        """The request's record: timings derived from the marks, the fairness verdict."""
        request, generation = self.request, self.generation
        ttft_s = decode_s = decode_tok_s = inter_token_s = inter_chunk_s = None
        if self.marks:
            first, last = self.marks[0][0], self.marks[-1][0]
            ttft_s = (first - self.submitted_ns) * NS
            decode_s = (last - first) * NS
            if not generation.chunk_tokens_exact:
                # tokens per chunk unknown: per-token gaps and decode speed would be guesses
                inter_chunk_s = _inter_chunk_gaps(self.marks)
            else:
                inter_token_s = _inter_token_gaps(self.marks)
                if generation.output_tokens > 1 and decode_s > 0:
                    decode_tok_s = (generation.output_tokens - self.marks[0][1]) / decode_s
        return RequestRecord(
            backend=self.backend,
            backend_kind=self.backend_kind,
            phase=request.phase,
            request_id=request.request_id,
            turn=request.turn,
            repeat=self.repeat,
            started_at=self.started_at,
            max_tiles=request.tiling.max_num,
            tiles_planned=request.tiles_planned,
            tiles=generation.tiles,
            image_tokens_planned=request.image_tokens_planned,
            image_tokens=generation.image_tokens,
            input_tokens=generation.input_tokens,
            max_new_tokens=request.max_new_tokens,
            output_tokens=generation.output_tokens,
            preprocess_s=(self.submitted_ns - self.start_ns) * NS,
            ttft_s=ttft_s,
            decode_s=decode_s,
            e2e_s=(self.end_ns - self.start_ns) * NS,
            decode_tok_s=decode_tok_s,
            inter_token_s=inter_token_s,
            inter_chunk_s=inter_chunk_s,
            preprocess_in_ttft=self.capabilities.preprocesses_inside_engine,
            text=generation.text,
            token_ids=generation.token_ids,
            finish_reason=generation.finish_reason,
            fairness=check_fairness(request, generation, self.capabilities),
            notes=generation.notes,
            details=generation.details,
        )


def measure_request(backend: Backend, request: WorkloadRequest, repeat: int) -> Measurement:
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
    return Measurement(backend.context.name, backend.kind, backend.capabilities, request, repeat,
                       started_at, t0, t1, t2, tuple(clock.marks), generation)


def _inter_chunk_gaps(marks: tuple[tuple[int, int], ...]) -> list[float]:
    """The gap before each chunk after the first, whatever it carried."""
    return [(current - previous) * NS for (previous, _), (current, _) in zip(marks, marks[1:])]


def _inter_token_gaps(marks: tuple[tuple[int, int], ...]) -> list[float]:
    """Per-token gaps; a chunk of k tokens spreads its gap over k tokens."""
    gaps = []
    for (previous, _), (current, count) in zip(marks, marks[1:]):
        gaps.extend([(current - previous) * NS / count] * count)
    return gaps
