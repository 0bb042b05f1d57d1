"""The OpenAI backend under load through the asyncio load client, against StandInStreamServer (a
stand-in with known delays that counts its requests in flight, not an engine): records, the
in-flight cap, and throughput and goodput arithmetic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend
from benchbench.config.overrides import ScenarioOverrides, apply_overrides
from benchbench.config.scenario import load_scenario, parse_scenario
from benchbench.execution.launch import ServerSpec, free_port, launch
from benchbench.execution.load_runner import run_workload_load
from benchbench.results.load import summarize_point
from benchbench.workload.build import build_workload
from test_load_client import stats

STANDIN = Path(__file__).with_name("standin_stream.py")


def start_standin(tmp_path, *flags: str):
    port = free_port()
    argv = (sys.executable, str(STANDIN), "--port", str(port), "--ttft-s", "0.1", "--token-s", "0.01", *flags)
    return launch(ServerSpec("StandInStreamServer", argv, port, tmp_path / "standin.log", startup_timeout_s=30, stop_grace_s=5))


@pytest.fixture
def standin(tmp_path):
    server = start_standin(tmp_path)
    yield server
    server.stop()


def records_at_concurrency(standin, tmp_path, concurrency, slo=None, max_new_tokens=4, client_processes=None):
    scenario = load_scenario("serve-sweep").with_overrides(requests=8, warmup=1, repeats=1, max_new_tokens=max_new_tokens)
    if slo is not None:
        scenario = parse_scenario({**scenario.model_dump(mode="json"), "slo": slo}, source="test")
    overrides = ScenarioOverrides(concurrency=concurrency, client_processes=client_processes)
    workload = build_workload(apply_overrides(scenario, overrides))
    context = BackendContext("openai", tmp_path, "auto", None, tmp_path, 0)
    options = parse_options(OpenAIBackend, {"url": standin.spec.url, "infer_image_tokens": False}, "openai")
    backend = OpenAIBackend(options, context)
    backend.load()
    measurements = []
    try:
        run_workload_load(backend, workload, measurements.append)
    finally:
        backend.close()
    return [m.record() for m in measurements]


def test_server_requests_go_through_the_load_client_within_the_concurrency(standin, tmp_path):
    records = records_at_concurrency(standin, tmp_path, [4])
    measured = [r for r in records if r.phase == "measure"]
    assert len(measured) == 8 and all(r.load.status == "ok" and r.output_tokens == 4 for r in measured)
    assert stats(standin)["max_in_flight"] == 4
    assert all(r.load.lag_s is not None and r.load.in_flight_at_send <= 4 for r in measured)
    # the stand-in cannot answer sooner than its delays: TTFT >= 0.1 s, 3 more tokens >= 0.03 s
    assert all(r.ttft_s >= 0.1 and r.decode_s >= 0.03 for r in measured)
    assert all(r.load.first_byte_s is not None and r.load.first_byte_s <= r.ttft_s for r in measured)


def test_two_client_processes_share_a_point_and_its_cap_holds(standin, tmp_path):
    measured = [r for r in records_at_concurrency(standin, tmp_path, [4], client_processes=2) if r.phase == "measure"]
    assert len(measured) == 8 and all(r.load.status == "ok" and r.output_tokens == 4 for r in measured)
    assert stats(standin)["max_in_flight"] == 4
    assert max(r.load.in_flight_at_send for r in measured) <= 4


def test_throughput_and_goodput_of_a_point_follow_from_its_requests(standin, tmp_path):
    measured = [r for r in records_at_concurrency(standin, tmp_path, [2], {"ttft_p99_s": 100.0}) if r.phase == "measure"]
    span = max(r.load.sent_s + r.e2e_s for r in measured) - min(r.load.sent_s for r in measured)
    summary = summarize_point(measured, ttft_limit_s=100.0)
    assert summary.achieved_req_s == pytest.approx(8 / span)
    assert summary.metrics["output_tok_s"] == pytest.approx(32 / span)
    assert summary.metrics["goodput_req_s"] == pytest.approx(summary.achieved_req_s)  # a generous SLO: all meet it
    tight = [r for r in records_at_concurrency(standin, tmp_path, [2], {"ttft_p99_s": 0.05}) if r.phase == "measure"]
    assert summarize_point(tight, ttft_limit_s=0.05).metrics["goodput_req_s"] == 0  # the stand-in's TTFT is >= 0.1 s
    # two in flight against 0.13 s answers: at most 2 / 0.13 requests per second
    assert summary.achieved_req_s <= 2 / 0.13


def test_a_generic_servers_multi_token_chunks_give_inter_chunk_times_under_load(tmp_path):
    with start_standin(tmp_path, "--tokens-per-chunk", "4") as standin:
        measured = [r for r in records_at_concurrency(standin, tmp_path, [2], max_new_tokens=12) if r.phase == "measure"]
    assert all(r.load.status == "ok" and r.output_tokens == 12 for r in measured)
    # three chunks of four tokens, counted one per content chunk: per-token gaps unknown, two chunk gaps kept
    assert all(r.inter_token_s is None and r.decode_tok_s is None and len(r.inter_chunk_s) == 2 for r in measured)
    assert all(r.notes[0].kind == "inter_token_chunks" for r in measured)
