"""LMDeploy under load, against the stand-in pipeline (``standin_lmdeploy.py``, NOT an engine): each
request a task of its own on the pipeline's event loop, released on the point's schedule, with
its token marks, load fields and status; the backend's declared batching."""

from __future__ import annotations

import sys

import pytest
from standin_lmdeploy import StandInSettings, standin_checkpoint, standin_lmdeploy_module

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lmdeploy.backend import LMDeployBackend
from benchbench.config.scenario import BackendSpec, parse_scenario
from benchbench.execution.load_runner import LoadMeasurement, run_workload_load
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.results.records import RecordSink, read_records
from benchbench.workload.build import build_workload


@pytest.fixture
def loaded(monkeypatch, tmp_path):
    """``loaded(settings, **options)``: an LMDeploy backend loaded on a fresh stand-in pipeline."""
    backends = []

    def load(settings: StandInSettings, request_timeout_s: float = 600.0, **options) -> LMDeployBackend:
        monkeypatch.setitem(sys.modules, "lmdeploy", standin_lmdeploy_module(settings))
        context = BackendContext("lmdeploy", standin_checkpoint(tmp_path / "checkpoint"), "auto", None, tmp_path, 0,
                                 trust_remote_code=True, request_timeout_s=request_timeout_s)  # fmt: skip
        backend = LMDeployBackend(parse_options(LMDeployBackend, options, "lmdeploy"), context)
        backend.load()
        backends.append(backend)
        return backend

    yield load
    for backend in backends:
        backend.close()


def workload(requests: int, sizes: list[list[int]], **load):
    scenario = parse_scenario(
        {
            "name": "lmdeploy-load",
            "images": {"synthetic": {"sizes": sizes}},
            "prompt": {"turns": [{"user": "<image>\nDescribe the image."}]},
            "requests": requests, "warmup": 0, "max_new_tokens": 4, "load": load,
        },
        source="test",
    )  # fmt: skip
    return build_workload(scenario)


def serve(backend: LMDeployBackend, workload) -> list[LoadMeasurement]:
    measurements: list[LoadMeasurement] = []
    run_workload_load(backend, workload, measurements.append)
    return measurements


def test_a_run_declares_continuous_batching_up_to_the_engines_max_batch_size(monkeypatch, tmp_path):
    """Through the runner, as a run does: the manifest's concurrency (which the report prints) is the
    engine's resolved max_batch_size, and every request of the point is a record on disk."""
    monkeypatch.setitem(sys.modules, "lmdeploy", standin_lmdeploy_module(StandInSettings(default_max_batch_size=4)))
    settings = RunSettings(tmp_path, standin_checkpoint(tmp_path / "checkpoint"), "auto", None, 0,
                           trust_remote_code=True, sample_resources=False)  # fmt: skip
    sink = RecordSink(tmp_path)
    outcome = run_backend(BackendSpec(kind="lmdeploy"), workload(4, [[800, 600]], concurrency=[2]), settings, sink, lambda r: None)
    sink.close()
    assert outcome.status == "ok", outcome.error
    assert outcome.load_info["concurrency"] == {"batching": "continuous", "max_in_flight": 4}
    records = read_records(tmp_path)
    assert [(r.phase, r.load.point, r.load.status) for r in records] == [("measure", "concurrency=2", "ok")] * 4


def test_a_closed_loop_keeps_its_concurrency_in_flight_with_marks_as_outputs_arrive(loaded):
    settings = StandInSettings(preprocess_s=0.01, ttft_s=0.02, token_s=0.005, tokens_per_output=2)
    backend = loaded(settings, max_batch_size=8)
    measurements = serve(backend, workload(6, [[800, 600]], concurrency=[3]))
    engine = backend.pipe.async_engine
    assert (engine.requests, engine.max_in_flight, engine.in_flight) == (6, 3, 0)
    assert engine.threads == {backend.pipe.internal_thread.thread}
    records = [m.record() for m in measurements]
    assert [r.load.status for r in records] == ["ok"] * 6
    assert max(r.load.in_flight_at_send for r in records) == 3
    assert all(r.load.point == "concurrency=3" and r.load.queue_s == 0 and r.load.lag_s is not None for r in records)
    assert all(r.output_tokens == 4 and r.token_ids is not None and r.fairness.ok for r in records)
    # no answer before the stand-in's own preprocess and first-token delays
    assert all(r.ttft_s >= settings.preprocess_s + settings.ttft_s for r in records)
    for measurement in measurements:
        served = measurement.served
        emitted = engine.emitted[served.generation.token_ids[0] // 1000]
        assert [count for _, count in served.marks] == [2, 2]
        # each mark was stamped after the stand-in yielded that output and before it made the next
        assert all(emitted[k] <= mark <= emitted[k + 1] for k, (mark, _) in enumerate(served.marks))


def test_an_open_loop_cap_holds_and_waiting_for_it_is_queueing_not_lag(loaded):
    backend = loaded(StandInSettings(preprocess_s=0.02, ttft_s=0.03), max_batch_size=8)
    # 200 req/s against answers that take at least 70 ms: without the cap 8 would be in flight
    measurements = serve(backend, workload(8, [[800, 600]], rate=[200.0], arrivals="constant", max_in_flight=2))
    assert backend.pipe.async_engine.max_in_flight == 2
    served = [m.served for m in measurements]
    assert all(s.status == "ok" for s in served)
    assert sum(s.cap_wait_ns > 0 for s in served) >= 6
    assert all(s.start_ns - s.due_ns == s.lag_ns + s.cap_wait_ns for s in served)
    records = [m.record() for m in measurements]
    assert {r.load.point for r in records} == {"rate=200"}
    assert max(r.load.in_flight_at_send for r in records) == 2


def test_an_engine_error_and_a_missed_deadline_are_records_and_the_point_goes_on(loaded):
    settings = StandInSettings(fail_width=1024, hang_width=640)
    backend = loaded(settings, request_timeout_s=1.0)
    measurements = serve(backend, workload(3, [[800, 600], [1024, 512], [640, 480]], concurrency=[3]))
    by_id = {m.served.job.request.request_id: m.record() for m in measurements}
    ok, failed, hung = (by_id[f"r00{i}"].load for i in range(3))
    assert (ok.status, by_id["r000"].output_tokens) == ("ok", 4)
    assert failed.status == "error"
    assert "lmdeploy failed request r001: context_length_exceeded: Input length (9000)" in failed.message
    assert (hung.status, hung.message) == ("timeout", "no complete answer within 1 s")
    engine = backend.pipe.async_engine
    # the timed-out request was cancelled in the engine, not left running
    assert (engine.cancelled, engine.in_flight) == (1, 0)
