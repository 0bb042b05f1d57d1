"""The load client against StandInStreamServer, a stand-in streaming server (not an engine) with
known delays that counts its requests in flight: caps, deadlines, failures as data, timing."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest

from benchbench.backends.http_wire import Origin, render_request
from benchbench.execution.launch import ServerSpec, free_port, launch
from benchbench.execution.loadclient import LoadClient

STANDIN = Path(__file__).with_name("standin_stream.py")


@pytest.fixture
def standin(tmp_path, request):
    """A stand-in started with the command-line flags the test passes (indirect parametrisation)."""
    port = free_port()
    argv = (sys.executable, str(STANDIN), "--port", str(port), *request.param.split())
    server = launch(ServerSpec("StandInStreamServer", argv, port, tmp_path / "standin.log", startup_timeout_s=30, stop_grace_s=5))
    yield server
    server.stop()


def stats(server) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", server.spec.port, timeout=10)
    connection.request("GET", "/stats")
    return json.loads(connection.getresponse().read())


def post(server, **body) -> bytes:
    return render_request(origin(server.spec.port), "POST", "/v1/chat/completions", json.dumps({"stream": True, **body}).encode())


def origin(port: int) -> Origin:
    return Origin("127.0.0.1", port)


@pytest.mark.parametrize("standin", ["--ttft-s 0.05 --token-s 0.005 --tokens 8"], indirect=True)
def test_a_closed_loop_holds_exactly_its_concurrency_across_processes(standin):
    with LoadClient(origin(standin.spec.port), processes=2, connections=4) as client:
        exchanges = client.run_point([post(standin)] * 24, None, max_in_flight=4, deadline_s=30)
    assert [e.status for e in exchanges] == ["ok"] * 24
    assert (stats(standin)["requests"], stats(standin)["max_in_flight"]) == (24, 4)
    assert max(e.in_flight_at_send for e in exchanges) <= 4


@pytest.mark.parametrize("standin", ["--ttft-s 0.2 --tokens 2"], indirect=True)
def test_an_open_loop_cap_holds_and_waits_for_it_are_recorded_apart_from_lag(standin):
    with LoadClient(origin(standin.spec.port), processes=1, connections=3) as client:
        offsets = [i * 0.01 for i in range(12)]  # 100 req/s against 0.2 s answers: 20 would be in flight
        exchanges = client.run_point([post(standin)] * 12, offsets, max_in_flight=3, deadline_s=30)
    assert all(e.status == "ok" for e in exchanges)
    assert stats(standin)["max_in_flight"] == 3
    waited = [e for e in exchanges if e.queued_ns > 0.1e9]
    assert len(waited) >= 6
    assert all(e.sent_ns - e.due_ns == e.lag_ns + e.queued_ns for e in exchanges)


@pytest.mark.parametrize("standin", ["--ttft-s 0.1 --token-s 0.01 --tokens 10 --tokens-per-chunk 2"], indirect=True)
def test_every_event_is_stamped_no_earlier_than_the_stand_ins_delays(standin):
    with LoadClient(origin(standin.spec.port), processes=1, connections=2) as client:
        exchanges = client.run_point([post(standin)] * 4, None, max_in_flight=2, deadline_s=30)
    for exchange in exchanges:
        times = [t for t, _ in exchange.events]
        contents = [json.loads(data) for _, data in exchange.events[:-1]]
        assert exchange.events[-1][1] == "[DONE]"
        assert [c["usage"]["completion_tokens"] for c in contents if c["choices"] and "usage" in c] == [2, 4, 6, 8, 10]
        # the stand-in cannot send early: event k (2 tokens each) comes no sooner than 0.1 s + k * 0.02 s
        assert all(times[k] - exchange.sent_ns >= 0.1e9 + k * 0.02e9 for k in range(5))
        assert exchange.sent_ns <= exchange.head_ns <= times[0] <= exchange.done_ns


@pytest.mark.parametrize("standin", ["--ttft-s 2 --tokens 2"], indirect=True)
def test_each_request_misses_its_own_deadline_and_the_client_goes_on(standin):
    with LoadClient(origin(standin.spec.port), processes=1, connections=2) as client:
        late = client.run_point([post(standin)] * 3, [0.0, 0.05, 0.1], None, deadline_s=0.3)
        assert [(e.status, e.message) for e in late] == [("timeout", "no complete answer within 0.3 s")] * 3
        assert all(0.3e9 <= e.done_ns - e.sent_ns < 1.5e9 for e in late)
        again = client.run_point([post(standin, max_tokens=1)], None, max_in_flight=1, deadline_s=30)
    assert again[0].status == "ok"


@pytest.mark.parametrize("standin", ["--tokens 3"], indirect=True)
def test_server_errors_are_recorded_with_the_servers_message(standin):
    requests = [post(standin), post(standin, standin_status=503), post(standin)]
    with LoadClient(origin(standin.spec.port), processes=1, connections=1) as client:
        exchanges = client.run_point(requests, None, max_in_flight=1, deadline_s=30)
    assert [e.status for e in exchanges] == ["ok", "error", "ok"]
    assert exchanges[1].http_status == 503 and "stand-in refused" in exchanges[1].message


def test_a_server_that_is_not_there_is_an_error_naming_it():
    port = free_port()
    with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
        LoadClient(origin(port), processes=1, connections=1)
