"""Load points through the in-process Transformers backend on the tiny model: batches, queueing."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.config.load import LoadSpec
from benchbench.config.scenario import load_scenario
from benchbench.execution.inprocess_load import LoadJob, serve_point
from benchbench.execution.strategies import strategy_for
from benchbench.workload.build import build_workload


@pytest.fixture(scope="module")
def jobs():
    requests = build_workload(load_scenario("10x-image").with_overrides(max_new_tokens=3)).measured[:4]
    return [LoadJob(request, 0) for request in requests]


def loaded_backend(model_dir: Path, batch: int) -> TransformersBackend:
    backend = TransformersBackend(TransformersOptions(max_batch_size=batch), BackendContext("transformers", model_dir, "auto", "cpu", Path("."), 0))
    backend.load()
    return backend


def test_a_closed_loop_at_concurrency_two_runs_batches_of_two_each_timed_per_request(tiny_model_dir, jobs):
    (point,) = LoadSpec(concurrency=[2]).points(4, 0)
    served = serve_point(loaded_backend(tiny_model_dir, batch=8), jobs, strategy_for(point), seed=0)
    assert [s.batch_size for s in served] == [2, 2, 2, 2]
    assert all(len(s.marks) == 3 and s.generation.output_tokens == 3 for s in served)
    first, second = served[:2], served[2:]
    assert first[0].submitted_ns == first[1].submitted_ns and first[0].end_ns == first[1].end_ns
    # the second pair became due when the first pair's slots freed
    assert all(s.due_ns >= first[0].end_ns for s in second)


def test_without_batching_a_second_request_queues_behind_the_first(tiny_model_dir, jobs):
    (point,) = LoadSpec(concurrency=[2]).points(4, 0)
    served = serve_point(loaded_backend(tiny_model_dir, batch=1), jobs[:2], strategy_for(point), seed=0)
    assert [s.batch_size for s in served] == [1, 1]
    assert served[1].due_ns <= served[0].end_ns <= served[1].start_ns
    assert served[1].queued_ns >= served[0].end_ns - served[0].start_ns


def test_a_throughput_point_puts_every_due_request_in_one_batch(tiny_model_dir, jobs):
    _, throughput = LoadSpec(sweep=1).points(4, 0)
    served = serve_point(loaded_backend(tiny_model_dir, batch=8), jobs, strategy_for(throughput), seed=0)
    assert [s.batch_size for s in served] == [4] * 4
    assert sorted(s.job.request.request_id for s in served) == sorted(j.request.request_id for j in jobs)
