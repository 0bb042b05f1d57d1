"""The LightLLM backend and the server launcher against StandInLightLLMServer (a stand-in, not
LightLLM): a real HTTP server in a real subprocess, started through the exact argv benchbench
builds. A shim package named ``lightllm`` (written to a temp dir, put on PYTHONPATH only for the
child) makes ``python -m lightllm.server.api_server`` run the stand-in."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lightllm.backend import LightLLMBackend
from benchbench.errors import BackendError, BenchError
from benchbench.execution.launch import ServerError, ServerSpec, free_port, launch
from benchbench.results.records import RecordSink, RequestRecord, read_records
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.config.scenario import BackendSpec
from server_requests import RecordingTimer
from server_requests import one_image_workload as a_workload

STANDIN = Path(__file__).with_name("standin_lightllm.py")


@pytest.fixture
def shim_path(tmp_path_factory, monkeypatch) -> Path:
    """A ``lightllm.server.api_server`` module that runs the stand-in; visible to children only."""
    root = tmp_path_factory.mktemp("shim")
    server = root / "lightllm" / "server"
    server.mkdir(parents=True)
    (root / "lightllm" / "__init__.py").write_text(
        "import os\n__version__ = os.environ.get('STANDIN_LIGHTLLM_VERSION', 'v1.1.0').lstrip('v')\n"
    )
    (server / "__init__.py").write_text("")
    (server / "api_server.py").write_text(f"import runpy\nrunpy.run_path({str(STANDIN)!r}, run_name='__main__')\n")
    monkeypatch.setenv("PYTHONPATH", str(root))
    return root


@pytest.fixture
def record(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "standin-record.jsonl"
    monkeypatch.setenv("STANDIN_RECORD", str(path))
    return path


def make_backend(tmp_path: Path, **values) -> LightLLMBackend:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    if "url" not in values:
        values.setdefault("startup_timeout_s", 30)
    context = BackendContext(
        name="lightllm", model_path=model, dtype="auto", device=None, run_dir=tmp_path, seed=0
    )
    return LightLLMBackend(parse_options(LightLLMBackend, values, "lightllm"), context)


def a_request(max_new_tokens: int = 6):
    return a_workload(max_new_tokens).measured[0]


def pids_in_log(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"pid (\d+)", log.read_text())]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def assert_all_gone(pids: list[int]) -> None:
    assert pids, "the stand-in logged no pids"
    assert [pid for pid in pids if alive(pid)] == []


# --- the launcher, through the backend


def test_server_receives_the_exact_argv_and_environment(tmp_path, shim_path, record):
    backend = make_backend(tmp_path, image_length=256, load_workers=4, cache_capacity=50, visual_infer_batch_size=2)
    try:
        facts = backend.load()
    finally:
        backend.close()
    started = json.loads(record.read_text().splitlines()[0])
    assert started["argv"] == facts["argv"][3:]  # after "python -m lightllm.server.api_server"
    assert facts["engine_version"] == "1.1.0"
    assert facts["argv"][:3] == [sys.executable, "-m", "lightllm.server.api_server"]
    assert started["env"] == {"INTERNVL_IMAGE_LENGTH": "256", "LIGHTLLM_INTERNVL_IMAGE_LENGTH": "256",
                              "LOADWORKER": "4", "LIGHTLLM_LOADWORKER": "4"}  # fmt: skip
    assert facts["url"].startswith("http://127.0.0.1:") and facts["launched"] is True


def test_launch_waits_until_health_answers_200(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_HEALTHY_AFTER_S", "1.0")
    backend = make_backend(tmp_path)
    started = time.monotonic()
    try:
        backend.load()
        assert time.monotonic() - started >= 1.0
        assert backend.client.health(5.0) == 200
    finally:
        backend.close()


def test_health_time_out_is_an_error_and_leaves_no_process(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_NEVER_HEALTHY", "1")
    monkeypatch.setenv("STANDIN_SPAWN_CHILD", "1")
    backend = make_backend(tmp_path, startup_timeout_s=1.5)
    with pytest.raises(ServerError, match=r"not healthy at /health within 1.5 s; raise the start-up timeout"):
        backend.load()
    assert_all_gone(pids_in_log(tmp_path / "logs" / "lightllm.server.log"))


def test_early_exit_is_an_error_quoting_the_log(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_EXIT_CODE", "3")
    backend = make_backend(tmp_path)
    with pytest.raises(ServerError, match=r"exited with code 3 before it became healthy") as caught:
        backend.load()
    assert "simulated start-up failure (CUDA out of memory)" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert any("simulated start-up failure" in line for line in caught.value.log_tail)
    assert_all_gone(pids_in_log(tmp_path / "logs" / "lightllm.server.log"))


def test_port_in_use_is_named_and_nothing_starts(tmp_path, shim_path, record):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        backend = make_backend(tmp_path, port=port)
        with pytest.raises(BackendError, match=rf"port {port} on 127.0.0.1 is already in use"):
            backend.load()
    assert not record.exists()


def test_missing_python_is_a_one_line_error(tmp_path):
    backend = make_backend(tmp_path, python="/nonexistent/bin/python")
    with pytest.raises(BackendError, match=r"cannot run '/nonexistent/bin/python'"):
        backend.load()


@pytest.mark.skipif(importlib.util.find_spec("lightllm") is not None, reason="lightllm is installed here")
def test_engine_not_installed_names_the_missing_module(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    backend = make_backend(tmp_path)
    with pytest.raises(BackendError, match=r"could not list its flags \(exit 1: .*No module named 'lightllm'"):
        backend.load()


def test_close_ends_the_whole_process_group(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_SPAWN_CHILD", "1")
    backend = make_backend(tmp_path)
    backend.load()
    pids = pids_in_log(tmp_path / "logs" / "lightllm.server.log")
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    backend.close()
    assert_all_gone(pids)


# --- the client


def test_streamed_request_reports_every_token_and_the_servers_counts(tmp_path, shim_path, record):
    backend = make_backend(tmp_path)
    request = a_request(max_new_tokens=6)
    timer = RecordingTimer()
    try:
        backend.load()
        prepared = backend.prepare(request)
        generation = backend.generate(prepared, timer)
    finally:
        backend.close()
    assert timer.counts == [1] * 6
    assert generation.output_tokens == 6 and generation.finish_reason == "length"
    assert generation.text == " t0 t1 t2 t3 t4 t5"
    assert generation.token_ids == list(range(1000, 1006))
    assert generation.input_tokens == len(prepared.body["inputs"]) + 256  # the stand-in's prompt_tokens rule
    assert (generation.tiles, generation.image_tokens) == (5, 5 * 256)
    sent = [json.loads(line) for line in record.read_text().splitlines()[1:]]
    assert sent == [{"path": "/generate_stream", "body": prepared.body, "in_flight": 1}]


def test_non_streaming_request_counts_tokens_and_leaves_the_timer_alone(tmp_path, shim_path, record):
    backend = make_backend(tmp_path, stream=False)
    timer = RecordingTimer()
    try:
        backend.load()
        generation = backend.generate(backend.prepare(a_request(max_new_tokens=4)), timer)
    finally:
        backend.close()
    assert timer.counts == []
    assert (generation.output_tokens, generation.token_ids) == (4, [1000, 1001, 1002, 1003])
    assert json.loads(record.read_text().splitlines()[1])["path"] == "/generate"


def test_a_server_that_ignores_ignore_eos_is_counted_not_trusted(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_EOS_AFTER", "2")
    backend = make_backend(tmp_path)
    try:
        backend.load()
        prepared = backend.prepare(a_request(max_new_tokens=6))
        prepared.body["parameters"]["ignore_eos"] = False  # as if the server dropped the flag
        prepared = dataclasses.replace(prepared, request=backend.client.render("/generate_stream", prepared.body))
        generation = backend.generate(prepared, RecordingTimer())
    finally:
        backend.close()
    assert (generation.output_tokens, generation.finish_reason) == (2, "stop")


def test_server_killed_mid_stream_is_an_error_and_leaves_no_process(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_SPAWN_CHILD", "1")
    monkeypatch.setenv("STANDIN_TOKEN_DELAY_S", "0.05")
    backend = make_backend(tmp_path)
    backend.load()
    pids = pids_in_log(tmp_path / "logs" / "lightllm.server.log")
    leader = backend.server.pid

    def kill_at_third_token(seen: int) -> None:
        if seen == 3:
            os.kill(leader, signal.SIGKILL)

    timer = RecordingTimer(kill_at_third_token)
    try:
        with pytest.raises(BenchError, match=r"exited with code -9 during a request .*stream ended after 3 token"):
            backend.generate(backend.prepare(a_request(max_new_tokens=50)), timer)
        assert alive(pids[1]), "the orphaned child must still be there for close() to end"
    finally:
        backend.close()
    assert_all_gone(pids)


def test_unreachable_url_is_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    backend = make_backend(tmp_path, url=url)
    with pytest.raises(BackendError, match=rf"cannot reach lightllm server {url}/health .*start it or check the url"):
        backend.load()


def test_url_mode_uses_a_running_server_and_leaves_it_running(tmp_path):
    port = free_port()
    spec = ServerSpec(
        name="stand-in", argv=(sys.executable, str(STANDIN), "--model_dir", "unused", "--port", str(port)),
        port=port, log_path=tmp_path / "standin.log", startup_timeout_s=30,
    )  # fmt: skip
    with launch(spec) as server:
        backend = make_backend(tmp_path, url=server.url)
        assert backend.load()["launched"] is False
        generation = backend.generate(backend.prepare(a_request(max_new_tokens=3)), RecordingTimer())
        backend.close()
        assert generation.output_tokens == 3
        assert server.exited() is None
    assert server.exited() is not None


# --- through the runner


def test_run_keeps_records_made_before_the_server_died_and_leaves_no_process(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_SPAWN_CHILD", "1")
    # Records are announced on the recorder's thread; slow tokens let the kill land inside request 3.
    monkeypatch.setenv("STANDIN_TOKEN_DELAY_S", "0.1")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    settings = RunSettings(run_dir=tmp_path, model_path=model, dtype="auto", device=None, seed=0)
    log = tmp_path / "logs" / "lightllm.server.log"
    emitted: list[RequestRecord] = []

    def kill_after_two_measured(record: RequestRecord) -> None:
        emitted.append(record)
        if record.phase == "measure" and sum(r.phase == "measure" for r in emitted) == 2:
            os.kill(pids_in_log(log)[0], signal.SIGKILL)

    sink = RecordSink(tmp_path)
    try:
        outcome = run_backend(BackendSpec(kind="lightllm"), a_workload(4, requests=4, warmup=1), settings, sink, kill_after_two_measured)
    finally:
        sink.close()
    assert outcome.status == "failed"
    assert "exited with code -9 during a request" in outcome.error
    kept = read_records(tmp_path)
    assert [(r.phase, r.request_id) for r in kept] == [("warmup", "w000"), ("measure", "r000"), ("measure", "r001")]
    assert all(r.output_tokens == 4 and r.ttft_s is not None and r.input_tokens for r in kept)
    # LightLLM's own tile rule gives 5 tiles where InternVL plans 7: flagged, not hidden.
    assert kept[1].fairness.violations == ["tiles 5 != planned 7", "image_tokens 1280 != planned 1792"]
    assert_all_gone(pids_in_log(log))
