"""The LightLLM backend under load through the asyncio load client, against StandInLightLLMServer
(a stand-in, not LightLLM: threaded, one request per thread, and it records how many requests
were in progress as each arrived)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchbench.backends.base import BackendContext, ServedOverHttp, parse_options
from benchbench.backends.lightllm.backend import LightLLMBackend
from benchbench.execution.launch import ServerSpec, free_port, launch
from benchbench.execution.load_runner import run_workload_load
from server_requests import one_image_workload

STANDIN = Path(__file__).with_name("standin_lightllm.py")


def test_lightllm_at_concurrency_4_goes_through_the_load_client_with_every_request_verified(tmp_path):
    port, seen = free_port(), tmp_path / "standin-record.jsonl"
    env = {"STANDIN_RECORD": str(seen), "STANDIN_TOKEN_DELAY_S": "0.005", "STANDIN_HOLD_UNTIL_IN_FLIGHT": "4"}
    argv = (sys.executable, str(STANDIN), "--model_dir", "unused", "--port", str(port))
    # 448x448 is one tile under both LightLLM's rule and InternVL's, so the fairness check can pass
    workload = one_image_workload(4, requests=8, warmup=4, size=(448, 448), load={"concurrency": [4]})
    measurements = []
    with launch(ServerSpec("StandInLightLLMServer", argv, port, tmp_path / "standin.log", env=env, startup_timeout_s=30)) as server:
        context = BackendContext("lightllm", tmp_path, "auto", None, tmp_path, 0)
        backend = LightLLMBackend(parse_options(LightLLMBackend, {"url": server.url}, "lightllm"), context)
        backend.load()
        try:
            assert isinstance(backend, ServedOverHttp) and backend.concurrency.batching == "server"
            run_workload_load(backend, workload, measurements.append)
        finally:
            backend.close()
    records = [m.record() for m in measurements]
    measured = [r for r in records if r.phase == "measure"]
    assert len(measured) == 8 and len(records) == 12
    assert all(r.fairness.ok and r.load.status == "ok" and r.load.point == "concurrency=4" for r in records)
    assert all((r.output_tokens, r.tiles, r.token_ids) == (4, 1, [1000, 1001, 1002, 1003]) for r in measured)
    assert all(len(r.inter_token_s) == 3 and r.inter_chunk_s is None for r in measured)  # one token per event: per token
    assert max(r.load.in_flight_at_send for r in records) == 4
    arrivals = [json.loads(line) for line in seen.read_text().splitlines()[1:]]
    assert len(arrivals) == 12 and all(a["path"] == "/generate_stream" for a in arrivals)
    assert max(a["in_flight"] for a in arrivals) == 4
