"""The LMDeploy backend against the real engines on a GPU.

Needs: a CUDA GPU, lmdeploy importable (``pip install -e .[lmdeploy]``), and BENCHBENCH_GPU_MODEL,
a local InternVL checkpoint folder (remote-code InternVL2.5/3 for the tile-budget test). Skips,
saying which is missing, otherwise.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from gpu_env import cuda_missing, model_missing

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lmdeploy.backend import LMDeployBackend
from benchbench.backends.lmdeploy.inputs import engine_tiling
from benchbench.results.records import RecordSink, read_records
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.config.scenario import BackendSpec, parse_scenario
from benchbench.workload.build import build_workload

MODEL = os.environ.get("BENCHBENCH_GPU_MODEL")


def _missing() -> str | None:
    installed = importlib.util.find_spec("lmdeploy") is not None
    return (
        cuda_missing()
        or (None if installed else "lmdeploy is not installed (pip install -e .[lmdeploy])")
        or model_missing()
    )


MISSING = _missing()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(MISSING is not None, reason=f"LMDeploy GPU test: {MISSING}")]


def scenario(max_nums: list[int], max_new_tokens: int, requests: int, warmup: int, load: dict | None = None):
    return parse_scenario(
        {
            **({"load": load} if load else {}),
            "name": "lmdeploy-gpu",
            "images": {"synthetic": {"sizes": [[800, 600], [1024, 512]]}},
            "prompt": {"turns": [{"user": "<image>\nDescribe the image in detail."}]},
            "requests": requests,
            "warmup": warmup,
            "max_new_tokens": max_new_tokens,
            "tiling": {"sweep_max_num": max_nums},
        },
        source="test",
    )


class CountingTimer:
    def __init__(self):
        self.tokens_seen = 0

    def tokens(self, count: int = 1) -> None:
        self.tokens_seen += count


@pytest.mark.parametrize("engine", ["turbomind", "pytorch"])
def test_runner_records_exactly_n_streamed_tokens_and_fair_verdicts(engine, tmp_path):
    workload = build_workload(scenario([6], max_new_tokens=32, requests=2, warmup=1))
    settings = RunSettings(tmp_path, Path(MODEL), "auto", None, 0, trust_remote_code=True)
    sink = RecordSink(tmp_path)
    spec = BackendSpec(
        kind="lmdeploy", label=f"lmdeploy-{engine}", options={"engine": engine, "cache_max_entry_count": 0.5}
    )
    outcome = run_backend(spec, workload, settings, sink, on_record=lambda record: None)
    sink.close()
    assert outcome.status == "ok", outcome.error
    assert outcome.load_info["engine"] == engine
    records = read_records(tmp_path)
    assert [r.phase for r in records] == ["warmup", "measure", "measure"]
    for record in records:
        assert (record.output_tokens, len(record.token_ids), record.finish_reason) == (32, 32, "length")
        assert record.ttft_s > 0 and record.preprocess_in_ttft
        assert record.fairness.ok, record.fairness.violations


def test_a_concurrency_point_holds_its_requests_in_flight_on_the_engines_loop(tmp_path):
    """Closed loop at 4 on the TurboMind engine: every request a task on the pipeline's loop, the
    first four sent together, each answered with exactly N streamed tokens."""
    workload = build_workload(scenario([6], max_new_tokens=16, requests=8, warmup=1, load={"concurrency": [4]}))
    settings = RunSettings(tmp_path, Path(MODEL), "auto", None, 0, trust_remote_code=True, request_timeout_s=300)
    sink = RecordSink(tmp_path)
    spec = BackendSpec(kind="lmdeploy", options={"cache_max_entry_count": 0.5, "max_batch_size": 8})
    outcome = run_backend(spec, workload, settings, sink, on_record=lambda record: None)
    sink.close()
    assert outcome.status == "ok", outcome.error
    assert outcome.load_info["concurrency"] == {"batching": "continuous", "max_in_flight": 8}
    records = read_records(tmp_path)
    measured = [r for r in records if r.phase == "measure"]
    assert len(measured) == 8 and sum(r.phase == "warmup" for r in records) == 4
    assert [r.load.status for r in records] == ["ok"] * len(records), [r.load.message for r in records]
    assert max(r.load.in_flight_at_send for r in measured) == 4
    for record in measured:
        assert record.load.point == "concurrency=4" and record.load.lag_s is not None
        assert (record.output_tokens, len(record.token_ids), record.finish_reason) == (16, 16, "length")
        assert record.ttft_s > 0 and record.fairness.ok, record.fairness.violations


def test_the_per_image_tile_budget_reaches_the_engine(tmp_path):
    """Between budgets 1 and 6 for the same image only the image tokens change, so the engine's
    input token counts must differ by exactly the planned tiles times tokens per tile."""
    if not engine_tiling(Path(MODEL)).per_request_budget:
        pytest.skip("this checkpoint's tile budget is fixed by its preprocessor_config.json")
    context = BackendContext("lmdeploy", Path(MODEL), "auto", None, tmp_path, 0, trust_remote_code=True)
    backend = LMDeployBackend(parse_options(LMDeployBackend, {"cache_max_entry_count": 0.5}, "lmdeploy"), context)
    backend.load()
    try:
        small, large = build_workload(scenario([1, 6], max_new_tokens=1, requests=1, warmup=0)).measured
        inputs = [backend.generate(backend.prepare(r), CountingTimer()).input_tokens for r in (small, large)]
    finally:
        backend.close()
    assert inputs[1] - inputs[0] == large.image_tokens_planned - small.image_tokens_planned
