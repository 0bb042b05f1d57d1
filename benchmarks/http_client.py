"""What the pooled HTTP client adds to TTFT, and how SSE decoding scales with event size.

    python benchmarks/http_client.py [--requests 50]

1. TTFT against StandInOpenAIServer (a stand-in, not an engine) with a 50 ms first-token delay:
   the client's TTFT minus the time the stand-in logs for its first token, for benchbench's
   OpenAI backend on its kept-alive connection, and for a bare socket client (the floor on this
   machine right now). Medians and 10th percentiles, in ms.
2. Decoding one event of 1, 5 and 20 MB fed in 4 KiB chunks: seconds per MB stays flat (linear).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from benchbench.backends.sse import SSEDecoder  # noqa: E402
from server_requests import text_workload  # noqa: E402
from test_http_client import FIRST_TOKEN_DELAY_S, bare_socket_ttfts, make_backend  # noqa: E402
from test_openai_standin import start_standin  # noqa: E402

from benchbench.execution.measure import measure_request  # noqa: E402


def ttft_added_ms(requests: int) -> dict[str, list[float]]:
    import os

    os.environ["STANDIN_FIRST_TOKEN_DELAY_S"] = str(FIRST_TOKEN_DELAY_S)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_standin(Path(tmp))
        try:
            backend = make_backend(Path(tmp), url=server.url)
            backend.load()
            ours = [measure_request(backend, r, 0).record().ttft_s for r in text_workload(4, requests + 1).measured]
            backend.close()
            bare = bare_socket_ttfts(server.spec.port, requests)
        finally:
            server.stop()
        sent = [int(ns) * 1e-9 for ns in re.findall(r"first token (\d+) ns", server.spec.log_path.read_text())]
    return {
        "benchbench openai backend": [(t - s) * 1e3 for t, s in zip(ours[1:], sent[1 : len(ours)])],
        "bare socket": [(t - s) * 1e3 for t, s in zip(bare, sent[len(ours) :])],
    }


def sse_seconds_per_mb(megabytes: int, chunk: int = 4096) -> float:
    payload = b"data: " + b"x" * (megabytes << 20) + b"\n\n"
    decoder = SSEDecoder(max_event_bytes=64 << 20)
    started = time.perf_counter()
    for start in range(0, len(payload), chunk):
        decoder.feed(payload[start : start + chunk])
    return (time.perf_counter() - started) / megabytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    for name, added in ttft_added_ms(args.requests).items():
        added.sort()
        print(f"TTFT added, {name}: median {statistics.median(added):.3f} ms, p10 {added[len(added) // 10]:.3f} ms")
    for megabytes in (1, 5, 20):
        print(f"SSE decode, one {megabytes} MB event in 4 KiB chunks: {sse_seconds_per_mb(megabytes) * 1e3:.1f} ms per MB")


if __name__ == "__main__":
    main()
