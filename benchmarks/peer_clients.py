"""guidellm and aiperf against the same stand-in, for benchmarks/client_capacity.py.

Each tool runs from ``--peers-python`` (a separate venv: both pull heavy dependencies) with a
closed loop at concurrency 64, 16 prompt tokens (tiny model's tokenizer) and 32 output tokens;
their own JSON exports give req/s and median TTFT / latency. TTFT error is the tool's median
minus the stand-in's own median over the same requests (reset before each tool runs).
"""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path

from benchbench.models.tiny import ensure_tiny_model

CONCURRENCY = 64


def _has(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def _guidellm(python: str, port: int, count: int, out: Path) -> dict:
    path = out / "guidellm.json"
    argv = [python, "-m", "guidellm", "run",
            "--backend", f"kind=openai_http,target=http://127.0.0.1:{port},model=standin-model",
            "--profile", f"kind=concurrent,streams={CONCURRENCY}",
            "--constraint", f"kind=max_requests,count={count}",
            "--data", "kind=synthetic_text,prompt_tokens=16,output_tokens=32",
            "--tokenizer", f"kind=hf_auto,model={ensure_tiny_model()}",
            "--output", f"kind=json,path={path}", "--disable-console-interactive"]  # fmt: skip
    _run(argv, out / "guidellm.log")
    metrics = json.loads(path.read_text())["benchmarks"][0]["metrics"]
    return {"req_s": metrics["requests_per_second"]["successful"]["mean"],
            "ttft_s": metrics["time_to_first_token_ms"]["successful"]["median"] / 1e3,
            "e2e_s": metrics["request_latency"]["successful"]["median"]}  # fmt: skip


def _aiperf(python: str, port: int, count: int, out: Path) -> dict:
    artifacts = out / "aiperf"
    argv = [python, "-m", "aiperf", "profile", "--model", "standin-model", "--url", f"http://127.0.0.1:{port}",
            "--endpoint-type", "chat", "--streaming", "--concurrency", str(CONCURRENCY), "--request-count", str(count),
            "--tokenizer", str(ensure_tiny_model()), "--synthetic-input-tokens-mean", "16",
            "--output-tokens-mean", "32", "--use-server-token-count", "--ui-type", "none",
            "--artifact-dir", str(artifacts)]  # fmt: skip
    _run(argv, out / "aiperf.log")
    export = json.loads((artifacts / "profile_export_aiperf.json").read_text())
    return {"req_s": export["request_throughput"]["avg"], "ttft_s": export["time_to_first_token"]["p50"] / 1e3,
            "e2e_s": export["request_latency"]["p50"] / 1e3}  # fmt: skip


def _run(argv: list[str], log: Path) -> None:
    with log.open("w") as handle:
        subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, timeout=600, check=True, cwd=log.parent)


PEERS = {"guidellm": _guidellm, "aiperf": _aiperf}


def standin_stats(port: int, reset: bool = False) -> dict:
    """The stand-in's own counts and timings (POST /stats/reset zeroes them first)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST" if reset else "GET", "/stats/reset" if reset else "/stats")
    return json.loads(connection.getresponse().read())


def _each_peer(python: str, port: int, count: int, log_dir: Path):
    for name, run in PEERS.items():
        if not _has(python, name):
            yield name, None, None
            continue
        out = log_dir / f"{name}-{port}"
        out.mkdir(parents=True, exist_ok=True)
        standin_stats(port, reset=True)
        yield name, run(python, port, count, out), standin_stats(port)


def peer_closed_loop_rows(python: str, port: int, ours_req_s: float, log_dir: Path) -> list[str]:
    rows = ["peers, closed loop at concurrency 64 (same stand-in):"]
    for name, result, _ in _each_peer(python, port, 2000, log_dir):
        if result is None:
            rows.append(f"  {name:<9} not installed in {python}")
        else:
            rows.append(f"  {name:<9} {result['req_s']:6.0f} req/s; benchbench / {name} = {ours_req_s / result['req_s']:.1f}x")
    return rows


def peer_ttft_rows(python: str, port: int, log_dir: Path) -> list[str]:
    rows = []
    for name, result, own in _each_peer(python, port, 256, log_dir):
        if result is not None:
            rows.append(f"  {name:<9}  TTFT p50 {result['ttft_s'] * 1e3:.1f} ms (stand-in's own {own['ttft_p50_s'] * 1e3:.1f}): "
                        f"error {(result['ttft_s'] - own['ttft_p50_s']) * 1e3:+.2f} ms; E2E p50 {result['e2e_s'] * 1e3:.1f} ms "
                        f"(own {own['e2e_p50_s'] * 1e3:.1f}): error {(result['e2e_s'] - own['e2e_p50_s']) * 1e3:+.2f} ms")  # fmt: skip
    return rows
