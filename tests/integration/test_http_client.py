"""The pooled HTTP client against StandInOpenAIServer (a stand-in, not an engine) and hostile
sockets on 127.0.0.1: connection reuse keeps set-up out of TTFT, and every call ends by its deadline."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend
from benchbench.errors import BackendError
from benchbench.execution.launch import LaunchedServer
from benchbench.execution.measure import measure_request
from benchbench.results.records import read_manifest
from server_requests import RecordingTimer, text_workload
from test_openai_standin import start_standin

FIRST_TOKEN_DELAY_S = 0.050
ROOT = Path(__file__).resolve().parents[2]


def make_backend(tmp_path: Path, load_timeout_s: float | None = None, **options) -> OpenAIBackend:
    context = BackendContext(name="openai", model_path=tmp_path, dtype="auto", device=None, run_dir=tmp_path, seed=0,
                             load_timeout_s=load_timeout_s)  # fmt: skip
    return OpenAIBackend(parse_options(OpenAIBackend, options, "openai"), context)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose kernel accepts connections that nobody ever reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def served(tmp_path: Path, monkeypatch, **env: str) -> LaunchedServer:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return start_standin(tmp_path)


def bare_socket_ttfts(port: int, count: int) -> list[float]:
    """TTFTs of the same kind of request sent by a bare socket client: one write, one connection."""
    body = json.dumps({"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 4, "stream": True}).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    ttfts = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started, received = time.perf_counter(), b""
            sock.sendall(request)
            while b" t0" not in received:
                received += sock.recv(65536)
            ttfts.append(time.perf_counter() - started)
            while not received.endswith(b"0\r\n\r\n"):
                received += sock.recv(65536)
    return ttfts


@pytest.fixture(scope="module")
def reused_connection_run(tmp_path_factory) -> tuple[list, list[float], str]:
    """21 timed requests through the OpenAI backend, then 20 from a bare socket client, against
    a stand-in with a 50 ms first-token delay: (records, bare TTFTs, the stand-in's log)."""
    tmp_path = tmp_path_factory.mktemp("reuse")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_FIRST_TOKEN_DELAY_S", str(FIRST_TOKEN_DELAY_S))
        server = start_standin(tmp_path)
    try:
        backend = make_backend(tmp_path, url=server.url)
        backend.load()
        records = [measure_request(backend, request, 0).record() for request in text_workload(4, requests=21).measured]
        backend.close()
        bare = bare_socket_ttfts(server.spec.port, 20)
    finally:
        server.stop()
    return records, bare, server.spec.log_path.read_text()


def test_every_request_after_load_reuses_the_connection_the_load_probe_opened(reused_connection_run):
    records, bare, log = reused_connection_run
    # Connection 1 was the launcher's health check; the backend's load probes (/v1/models, then
    # /version and /get_server_info for the engine version) opened connection 2, and the server saw
    # every request on it.
    load_probes = 3
    assert re.findall(r"stand-in conn (\d+): ", log) == ["1"] + ["2"] * (load_probes + len(records)) + ["3"] * len(bare)
    assert not any("connection_note" in record.details for record in records)


def test_ttft_on_a_reused_connection_is_within_1_ms_of_the_servers_first_token(reused_connection_run):
    # The stand-in logs when its first token really left (its sleep overshoots on a busy machine):
    # TTFT minus that is what the client, the connection and the scheduler add. A bare socket
    # client measures the scheduler's share on this machine now; noise only adds, so the least of
    # each shows the floor (benchmarks/http_client.py reports medians).
    if os.getloadavg()[0] > 4 * (os.cpu_count() or 1):
        pytest.skip(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: sub-millisecond timing is noise here")
    records, bare, log = reused_connection_run
    server_s = [int(ns) * 1e-9 for ns in re.findall(r"first token (\d+) ns", log)]
    assert len(server_s) == len(records) + len(bare) and min(server_s) >= FIRST_TOKEN_DELAY_S
    ours = [record.ttft_s - sent for record, sent in zip(records[1:], server_s[1:])]
    floor = [ttft - sent for ttft, sent in zip(bare, server_s[len(records) :])]
    assert 0 < min(ours) < min(floor) + 0.001, (ours, floor)


def test_a_black_hole_server_fails_the_load_probe_at_the_load_deadline(tmp_path, black_hole):
    backend = make_backend(tmp_path, load_timeout_s=1.0, url=f"http://127.0.0.1:{black_hole}")
    with pytest.raises(BackendError, match=r"/v1/models: no complete answer within 1 s"):
        backend.load()


def test_an_endless_event_dripping_in_is_stopped_at_the_request_deadline(tmp_path, monkeypatch):
    server = served(tmp_path, monkeypatch, STANDIN_DRIBBLE_S="0.05")
    try:
        backend = make_backend(tmp_path, url=server.url, request_timeout_s=1.0)
        backend.load()
        prepared = backend.prepare(text_workload(4, requests=1).measured[0])
        with pytest.raises(BackendError, match=r"answer not complete within 1 s \(after 0 token\(s\)\)"):
            backend.generate(prepared, RecordingTimer())
        backend.close()
    finally:
        server.stop()


def test_a_five_megabyte_delta_arrives_as_one_token(tmp_path, monkeypatch):
    server = served(tmp_path, monkeypatch, STANDIN_BIG_DELTA_BYTES=str(5 << 20))
    try:
        backend = make_backend(tmp_path, url=server.url)
        backend.load()
        timer = RecordingTimer()
        generation = backend.generate(backend.prepare(text_workload(3, requests=1).measured[0]), timer)
        backend.close()
    finally:
        server.stop()
    assert timer.counts == [1, 1, 1]
    assert generation.text == "x" * (5 << 20) + " t1 t2"


def test_load_timeout_on_the_command_line_bounds_a_black_hole_probe(tmp_path, black_hole):
    run_dir = tmp_path / "run"
    command = [sys.executable, str(ROOT / "run_bench.py"), "--scenario", "10x-image", "--backend", "openai",
               "--url", f"http://127.0.0.1:{black_hole}", "--requests", "1", "--warmup", "0",
               "--load-timeout", "2", "--output-dir", str(run_dir), "--no-progress"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    outcome = read_manifest(run_dir).backends[0]
    assert done.returncode == 1, done.stderr
    # Whichever fires first, the probe's own deadline or the worker's load watchdog, names 2 s.
    assert outcome.status == "failed" and re.search(r"(no complete answer|load time-out of) .*2 s", outcome.error)
