"""The OpenAI backend's failure paths (and one plain run) against StandInOpenAIServer, a stand-in
speaking the OpenAI chunk shapes, not a real engine: a real HTTP server in a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend
from benchbench.errors import BackendError, BenchError
from benchbench.execution.launch import LaunchedServer, ServerSpec, free_port, launch
from benchbench.results.records import RecordSink, RequestRecord, read_records
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.config.scenario import BackendSpec
from server_requests import RecordingTimer, one_image_workload

STANDIN = Path(__file__).with_name("standin_openai.py")


def start_standin(tmp_path: Path) -> LaunchedServer:
    port = free_port()
    spec = ServerSpec(
        name="StandInOpenAIServer", argv=(sys.executable, str(STANDIN), "--port", str(port)),
        port=port, log_path=tmp_path / "standin.log", startup_timeout_s=30, stop_grace_s=5,
    )  # fmt: skip
    return launch(spec)


@pytest.fixture
def standin(tmp_path):
    server = start_standin(tmp_path)
    yield server
    server.stop()


def make_backend(tmp_path: Path, **options) -> OpenAIBackend:
    context = BackendContext(name="openai", model_path=tmp_path, dtype="auto", device=None, run_dir=tmp_path, seed=0)
    return OpenAIBackend(parse_options(OpenAIBackend, options, "openai"), context)


def children_of_this_process() -> list[int]:
    """Live (not zombie) child processes of the test process, read from /proc."""
    children = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                state, ppid = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue
            if int(ppid) == os.getpid() and state not in ("Z", "X"):
                children.append(int(entry.name))
    return children


def test_a_streamed_request_counts_every_chunk_and_infers_the_tiles(tmp_path, standin):
    backend = make_backend(tmp_path, url=standin.url)
    facts = backend.load()
    timer = RecordingTimer()
    request = one_image_workload(5).measured[0]
    backend.calibrate([request])
    generation = backend.generate(backend.prepare(request), timer)
    assert facts["model"] == "standin-model"
    assert timer.counts == [1] * 5
    assert (generation.text, generation.output_tokens, generation.finish_reason) == (" t0 t1 t2 t3 t4", 5, "length")
    assert (generation.tiles, generation.image_tokens, generation.input_tokens) == (7, 1792, 10 + 3 + 1792)
    assert generation.details["image_wrapper_tokens"] == 3


def test_the_text_only_probe_is_made_by_calibrate_once_per_conversation_and_never_timed(tmp_path, standin):
    backend = make_backend(tmp_path, url=standin.url)
    backend.load()
    chat_posts = lambda: (tmp_path / "standin.log").read_text().count("POST /v1/chat/completions")  # noqa: E731
    requests = one_image_workload(3, requests=3).measured  # three images, one conversation text
    backend.calibrate(requests)
    after_calibrate = chat_posts()
    prepared = [backend.prepare(request) for request in requests]
    assert after_calibrate == 1 and chat_posts() == 1  # prepare (timed) sends nothing
    assert [p.baseline_tokens for p in prepared] == [10] * 3


def test_unreachable_url_is_a_one_line_error_naming_the_url_and_the_fix(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BenchError, match=rf"cannot reach openai server {url}/v1/models .*start it or check the url"):
        make_backend(tmp_path, url=url).load()


def test_server_killed_mid_stream_is_an_error_and_no_process_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_TOKEN_DELAY_S", "0.05")
    server = start_standin(tmp_path)
    try:
        backend = make_backend(tmp_path, url=server.url)
        backend.load()
        prepared = backend.prepare(one_image_workload(50).measured[0])

        def kill_at_third_token(seen: int) -> None:
            if seen == 3:
                os.kill(server.pid, signal.SIGKILL)

        with pytest.raises(BackendError, match=rf"openai server {server.url}/v1/chat/completions: .*after 3 token\(s\).*the server may have crashed"):
            backend.generate(prepared, RecordingTimer(kill_at_third_token))
        backend.close()
    finally:
        server.stop()
    assert server.exited(within_s=5.0) == -signal.SIGKILL
    assert children_of_this_process() == []


def test_fields_a_strict_server_refuses_are_quoted(tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_STRICT", "1")
    server = start_standin(tmp_path)
    try:
        backend = make_backend(tmp_path, url=server.url, dialect="vllm", infer_image_tokens=False)
        backend.load()
        with pytest.raises(BackendError, match=r"refused /v1/chat/completions: HTTP 422: Unexpected fields in the request: \['ignore_eos'"):
            backend.generate(backend.prepare(one_image_workload(2).measured[0]), RecordingTimer())
    finally:
        server.stop()


def test_a_model_the_server_does_not_list_is_named(tmp_path, standin):
    with pytest.raises(BenchError, match=r"model 'internvl' is not served at .* \(it serves standin-model\); set the option model"):
        make_backend(tmp_path, url=standin.url, model="internvl").load()


def test_run_keeps_records_made_before_the_server_died(tmp_path, monkeypatch):
    # Records are announced on the recorder's thread; slow tokens let the kill land inside request 3.
    monkeypatch.setenv("STANDIN_TOKEN_DELAY_S", "0.1")
    server = start_standin(tmp_path)
    settings = RunSettings(run_dir=tmp_path, model_path=tmp_path, dtype="auto", device=None, seed=0)
    emitted: list[RequestRecord] = []

    def kill_after_two_measured(record: RequestRecord) -> None:
        emitted.append(record)
        if sum(r.phase == "measure" for r in emitted) == 2:
            os.kill(server.pid, signal.SIGKILL)

    sink = RecordSink(tmp_path)
    try:
        spec = BackendSpec(kind="openai", options={"url": server.url})
        outcome = run_backend(spec, one_image_workload(4, requests=4, warmup=1), settings, sink, kill_after_two_measured)
    finally:
        sink.close()
        server.stop()
    # The kill lands inside the third measured request: the error names the server that died.
    assert outcome.status == "failed" and f"openai server {server.url}" in outcome.error
    kept = read_records(tmp_path)
    assert [(r.phase, r.request_id) for r in kept] == [("warmup", "w000"), ("measure", "r000"), ("measure", "r001")]
    assert all(r.output_tokens == 4 and r.ttft_s is not None and r.tiles == 7 for r in kept)
    # A generic server can be neither forced nor given the tile budget: the record says so.
    assert "exact token count (engine cannot be forced; counted what came back)" in kept[1].fairness.unchecked
    assert children_of_this_process() == []


@pytest.mark.parametrize(("flavour", "shown"), [("vllm", "vllm 0.11.0"), ("sglang", "sglang 0.5.23"), (None, "generic version not reported")])
def test_the_servers_version_is_recorded_and_shown_in_the_environment_table(tmp_path, monkeypatch, flavour, shown):
    from benchbench.report.provenance import engine_version

    if flavour:
        monkeypatch.setenv("STANDIN_FLAVOUR", flavour)
    server = start_standin(tmp_path)
    try:
        facts = make_backend(tmp_path, url=server.url, dialect=flavour or "generic").load()
    finally:
        server.stop()
    assert facts["engine_version"] == {"vllm": "0.11.0", "sglang": "0.5.23", None: None}[flavour]
    assert engine_version(facts).text == shown
