"""Load-client capacity: how fast benchbench's load client can send and time streamed requests.

Against StandInStreamServer (a stand-in, not an engine; zero delay, 32 one-token SSE events per
answer) on 127.0.0.1 it measures, in one run:

1. the HTTP library: one process, closed loop at concurrency 64, raw asyncio protocol (what the
   load client uses) vs httpx's async client vs aiohttp (when importable): req/s and client CPU
   per request;
2. the load client at concurrency 64 (1 and 2 processes): req/s, scheduling lag p50/p99;
3. open loop: the highest rate from a ladder with lag p99 <= 1 ms, achieved >= 95% of the target
   and every request verified (status ok, 32 tokens, ``[DONE]``);
4. TTFT and E2E error at concurrency 64 against a 200 ms TTFT / 20 ms-per-token stand-in;
5. with ``--peers-python`` (a venv with guidellm and/or aiperf), the same closed-loop and TTFT
   measurements through them, and the ratios.

Targets (issue 10): >= 800 req/s with lag p99 <= 1 ms; TTFT error <= 2 ms.

    flock /work/bench.lock python benchmarks/client_capacity.py [--peers-python VENV/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchbench.workload.arrivals import send_offsets  # noqa: E402
from benchbench.backends.http_wire import ConnectionPool, Origin, render_request  # noqa: E402
from benchbench.execution.launch import ServerSpec, free_port, launch  # noqa: E402
from benchbench.execution.loadclient import LoadClient  # noqa: E402
from peer_clients import peer_closed_loop_rows, peer_ttft_rows, standin_stats  # noqa: E402

STANDIN = ROOT / "tests" / "integration" / "standin_stream.py"
TOKENS = 32
PATH = "/v1/chat/completions"
BODY = json.dumps({"model": "standin-model", "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": TOKENS, "stream": True}).encode()  # fmt: skip


def start_standin(log_dir: Path, *flags: str):
    port = free_port()
    argv = (sys.executable, str(STANDIN), "--port", str(port), "--tokens", str(TOKENS), *flags)
    return launch(ServerSpec("StandInStreamServer", argv, port, log_dir / f"standin-{port}.log", startup_timeout_s=30))


def verified(payloads: list[str]) -> bool:
    """32 tokens in content events (each ``" t{i}"``), then usage, then ``[DONE]``."""
    if not payloads or payloads[-1] != "[DONE]":
        return False
    text = "".join(
        choice["delta"].get("content", "") for data in payloads[:-1] for choice in json.loads(data)["choices"]
    )
    return text.split() == [f"t{i}" for i in range(TOKENS)]


# --- 1. the HTTP library, in one process, same closed loop ---------------------------------------


async def _raw_loop(port: int, count: int, concurrency: int) -> list[list[str]]:
    origin = Origin("127.0.0.1", port)
    pool, request, results = ConnectionPool(origin), render_request(origin, "POST", PATH, BODY), []
    await pool.prewarm(concurrency)

    async def slot(share: int) -> None:
        for _ in range(share):
            connection = await pool.acquire()
            response = await connection.request(request, sse=True)
            pool.release(connection, response.reusable)
            results.append([data for _, data in response.events])

    await asyncio.gather(*(slot(count // concurrency) for _ in range(concurrency)))
    pool.close()
    return results


async def _httpx_loop(port: int, count: int, concurrency: int) -> list[list[str]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:

        async def slot(share: int) -> None:
            for _ in range(share):
                async with client.stream("POST", PATH, content=BODY, headers={"Content-Type": "application/json"}) as r:
                    results.append([line[5:].strip() async for line in r.aiter_lines() if line.startswith("data:")])

        await asyncio.gather(*(slot(count // concurrency) for _ in range(concurrency)))
    return results


async def _aiohttp_loop(port: int, count: int, concurrency: int) -> list[list[str]]:
    import aiohttp

    results = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as session:

        async def slot(share: int) -> None:
            for _ in range(share):
                async with session.post(PATH, data=BODY, headers={"Content-Type": "application/json"}) as r:
                    results.append([line[5:].strip().decode() async for line in r.content if line.startswith(b"data:")])

        await asyncio.gather(*(slot(count // concurrency) for _ in range(concurrency)))
    return results


LIBRARIES = {"raw asyncio protocol": _raw_loop, "httpx": _httpx_loop, "aiohttp": _aiohttp_loop}


def _library_child(name: str, port: int, count: int, concurrency: int, pipe) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    payloads = asyncio.run(LIBRARIES[name](port, count, concurrency))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pipe.send((len(payloads) / wall, cpu / len(payloads) * 1e3, sum(map(verified, payloads)), len(payloads)))


def library_rows(port: int, count: int, concurrency: int) -> list[str]:
    rows = []
    for name in LIBRARIES:
        if name == "aiohttp" and not _importable("aiohttp"):
            rows.append(f"  {name:<22} not installed (pip install aiohttp to compare)")
            continue
        parent, child = multiprocessing.get_context("fork").Pipe()
        process = multiprocessing.get_context("fork").Process(target=_library_child, args=(name, port, count, concurrency, child))
        process.start()
        req_s, cpu_ms, ok, total = parent.recv()
        process.join()
        rows.append(f"  {name:<22} {req_s:7.0f} req/s  {cpu_ms:5.2f} ms CPU/request  verified {ok}/{total}")
    return rows


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# --- 2.-4. the load client ------------------------------------------------------------------------


def point_stats(exchanges, target_req_s: float | None = None) -> dict:
    sent = min(e.sent_ns for e in exchanges)
    span_s = (max(e.done_ns for e in exchanges) - sent) / 1e9
    lag_ms = np.array([e.lag_ns for e in exchanges]) / 1e6
    ok = sum(e.status == "ok" and verified([data for _, data in e.events]) for e in exchanges)
    stats = {"req_s": len(exchanges) / span_s, "lag_p50_ms": float(np.percentile(lag_ms, 50)),
             "lag_p99_ms": float(np.percentile(lag_ms, 99)), "verified": ok, "requests": len(exchanges)}  # fmt: skip
    if target_req_s:
        # achieved rate of sending: the open loop's own schedule, not the server's completions
        send_span = (max(e.sent_ns for e in exchanges) - sent) / 1e9
        stats["sent_req_s"] = (len(exchanges) - 1) / send_span
    return stats


def client_cpu_ms(client: LoadClient, before: float, requests: int) -> float:
    return (sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in client.pids) - before) / requests * 1e3


def closed_loop_rows(port: int, count: int, processes: int) -> tuple[list[str], float]:
    request = render_request(Origin("127.0.0.1", port), "POST", PATH, BODY)
    with LoadClient(Origin("127.0.0.1", port), processes=processes, connections=64) as client:
        client.run_point([request] * 256, None, 64, deadline_s=60)  # warm the processes and connections
        cpu = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in client.pids)
        stats = point_stats(client.run_point([request] * count, None, 64, deadline_s=60))
        cpu_ms = client_cpu_ms(client, cpu, count)
    row = (f"  concurrency 64, {processes} process(es): {stats['req_s']:6.0f} req/s  lag p50 {stats['lag_p50_ms']:.3f} "
           f"p99 {stats['lag_p99_ms']:.3f} ms  {cpu_ms:.2f} ms CPU/request  verified {stats['verified']}/{stats['requests']}")  # fmt: skip
    return [row], stats["req_s"]


def open_loop_rows(port: int, rates: list[float], seconds: float, processes: int) -> tuple[list[str], float]:
    request = render_request(Origin("127.0.0.1", port), "POST", PATH, BODY)
    rows, best = [], 0.0
    with LoadClient(Origin("127.0.0.1", port), processes=processes, connections=128) as client:
        for rate in rates:
            count = int(rate * seconds)
            offsets = send_offsets("poisson", rate, count, seed=0)
            stats = point_stats(client.run_point([request] * count, offsets, None, deadline_s=60), rate)
            passed = stats["lag_p99_ms"] <= 1.0 and stats["sent_req_s"] >= 0.95 * rate and stats["verified"] == count
            best = max(best, rate) if passed else best
            rows.append(f"  poisson {rate:6.0f} req/s, {processes} process(es): sent {stats['sent_req_s']:6.0f} req/s  "
                        f"lag p50 {stats['lag_p50_ms']:.3f} p99 {stats['lag_p99_ms']:.3f} ms  verified {stats['verified']}/{count}"
                        f"  {'PASS' if passed else 'fail'}")  # fmt: skip
    return rows, best


def ttft_error_rows(port: int, count: int) -> tuple[list[str], dict]:
    """Client TTFT/E2E minus the stand-in's own (request read to first/last token written), p50."""
    request = render_request(Origin("127.0.0.1", port), "POST", PATH, BODY)
    with LoadClient(Origin("127.0.0.1", port), processes=1, connections=64) as client:
        client.run_point([request] * 64, None, 64, deadline_s=60)
        standin_stats(port, reset=True)
        exchanges = client.run_point([request] * count, None, 64, deadline_s=60)
    own = standin_stats(port)
    ttft_s = float(np.median([e.events[0][0] - e.sent_ns for e in exchanges])) / 1e9
    e2e_s = float(np.median([e.done_ns - e.sent_ns for e in exchanges])) / 1e9
    errors = {"ttft_ms": (ttft_s - own["ttft_p50_s"]) * 1e3, "e2e_ms": (e2e_s - own["e2e_p50_s"]) * 1e3}
    row = (f"  benchbench: TTFT p50 {ttft_s * 1e3:.1f} ms (stand-in's own {own['ttft_p50_s'] * 1e3:.1f}): error "
           f"{errors['ttft_ms']:+.2f} ms; E2E p50 {e2e_s * 1e3:.1f} ms (own {own['e2e_p50_s'] * 1e3:.1f}): error "
           f"{errors['e2e_ms']:+.2f} ms; {count} requests")
    return [row], errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="closed-loop requests per measurement")
    parser.add_argument("--rates", default="200,400,600,800,1000,1200,1600", help="open-loop ladder, req/s")
    parser.add_argument("--seconds", type=float, default=4.0, help="open-loop seconds per rate")
    parser.add_argument("--peers-python", default=None, help="a python with guidellm and/or aiperf installed")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/client_capacity"))
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    fast = start_standin(args.log_dir)
    try:
        print("HTTP library, one process, closed loop at concurrency 64:")
        print("\n".join(library_rows(fast.spec.port, min(args.requests, 3000), 64)))
        print("benchbench load client:")
        closed = {}
        for processes in (1, 2):
            rows, closed[processes] = closed_loop_rows(fast.spec.port, args.requests, processes)
            print("\n".join(rows))
        best = {}
        for processes in (1, 2):
            rows, best[processes] = open_loop_rows(fast.spec.port, [float(r) for r in args.rates.split(",")], args.seconds, processes)
            print("\n".join(rows))
        print(f"  highest open-loop rate within lag p99 <= 1 ms, all verified: {max(best.values()):.0f} req/s "
              f"(1 process {best[1]:.0f}, 2 processes {best[2]:.0f}); target >= 800")
        if args.peers_python:
            print("\n".join(peer_closed_loop_rows(args.peers_python, fast.spec.port, max(closed.values()), args.log_dir)))
    finally:
        fast.stop()

    slow = start_standin(args.log_dir, "--ttft-s", "0.2", "--token-s", "0.02")
    try:
        print("TTFT / E2E error at concurrency 64 against a 200 ms / 20 ms-per-token stand-in:")
        rows, _ = ttft_error_rows(slow.spec.port, 256)
        print("\n".join(rows))
        if args.peers_python:
            print("\n".join(peer_ttft_rows(args.peers_python, slow.spec.port, args.log_dir)))
    finally:
        slow.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share these CPUs)")


if __name__ == "__main__":
    main()
