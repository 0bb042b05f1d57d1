"""StandInStreamServer: a stand-in for a streaming OpenAI-compatible server, NOT a real engine.

Raw asyncio streams (no framework), so that it costs little CPU and a load test measures the
client, not the stand-in. POST /v1/chat/completions answers with HTTP/1.1 chunked SSE in OpenAI's
chunk shapes: after ``--ttft-s`` the first token, then one token every ``--token-s``,
``--tokens-per-chunk`` tokens per event (each event carries its cumulative usage, as vLLM's
``continuous_usage_stats`` does), a finish chunk, a usage chunk and ``data: [DONE]``. It emits ``max_tokens``
tokens (default ``--tokens``). Connections are kept alive. It counts requests in flight:
GET /stats answers ``{"requests": n, "max_in_flight": m, "ttft_p50_s": ..., "e2e_p50_s": ...}``, the
latter two as the stand-in itself timed them (request read to first/last token written), so a
client's error is its figure minus these; POST /stats/reset zeroes them.
GET /health answers 200, GET /v1/models names ``standin-model``. A request whose body has ``"standin_status": 503`` is answered with that HTTP error.

    python tests/integration/standin_stream.py --port 8000 --ttft-s 0.2 --token-s 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

EVENT = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"%s"}}],"usage":{"completion_tokens":%d}}\n\n'
FINISH = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class StandInStreamServer:
    def __init__(self, ttft_s: float, token_s: float, tokens: int, tokens_per_chunk: int):
        self.ttft_s, self.token_s, self.tokens, self.per_chunk = ttft_s, token_s, tokens, tokens_per_chunk
        self.in_flight = self.max_in_flight = self.requests = 0
        self.ttft_ns: list[int] = []  # as the stand-in itself saw them: request read -> first token written
        self.e2e_ns: list[int] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                               if k.strip().lower() == "content-length"), 0)  # fmt: skip
                body = await reader.readexactly(length) if length else b""
                if path.startswith("/stats"):
                    self._stats(writer, reset=method == "POST")
                elif path == "/v1/chat/completions":
                    await self._complete(json.loads(body or b"{}"), writer)
                elif path == "/health":
                    writer.write(_plain(200, b"ok"))
                elif path == "/v1/models":
                    writer.write(_plain(200, b'{"object":"list","data":[{"id":"standin-model","object":"model"}]}', b"application/json"))
                else:
                    writer.write(_plain(404, b"not found"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _stats(self, writer: asyncio.StreamWriter, reset: bool) -> None:
        if reset:
            self.max_in_flight = self.requests = 0
            self.ttft_ns, self.e2e_ns = [], []
        stats = {"requests": self.requests, "max_in_flight": self.max_in_flight}
        if self.ttft_ns:
            stats.update(ttft_p50_s=statistics.median(self.ttft_ns) / 1e9, e2e_p50_s=statistics.median(self.e2e_ns) / 1e9)
        payload = json.dumps(stats).encode()
        writer.write(_plain(200, payload, b"application/json"))

    async def _complete(self, body: dict, writer: asyncio.StreamWriter) -> None:
        arrived_ns = time.perf_counter_ns()
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if "standin_status" in body:
                writer.write(_plain(int(body["standin_status"]), b'{"error":{"message":"stand-in refused"}}'))
                return
            writer.write(HEAD)
            total = int(body.get("max_tokens") or self.tokens)
            if self.ttft_s:
                await asyncio.sleep(self.ttft_s)
            sent, pieces = 0, []
            while sent < total:
                if sent and self.token_s:
                    if sent == self.per_chunk:
                        self.ttft_ns.append(time.perf_counter_ns() - arrived_ns)
                    writer.write(b"".join(pieces))
                    pieces.clear()
                    await writer.drain()
                    await asyncio.sleep(self.token_s * self.per_chunk)
                count = min(self.per_chunk, total - sent)
                sent += count
                text = "".join(f" t{i}" for i in range(sent - count, sent)).encode()
                pieces.append(_chunk(EVENT % (text, sent)))
            usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": total}}
            pieces.append(_chunk(FINISH + b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n"))
            if not (self.token_s and total > self.per_chunk):
                self.ttft_ns.append(time.perf_counter_ns() - arrived_ns)
            writer.write(b"".join(pieces) + b"0\r\n\r\n")  # zero delays: the whole stream in one write
            self.e2e_ns.append(time.perf_counter_ns() - arrived_ns)
        finally:
            self.in_flight -= 1


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _plain(status: int, payload: bytes, kind: bytes = b"text/plain") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (status, kind, len(payload), payload)


async def serve(args: argparse.Namespace) -> None:
    standin = StandInStreamServer(args.ttft_s, args.token_s, args.tokens, args.tokens_per_chunk)
    server = await asyncio.start_server(standin.handle, args.host, args.port, backlog=4096)
    print(f"StandInStreamServer pid {os.getpid()} on {args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="StandInStreamServer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-s", type=float, default=0.0)
    parser.add_argument("--token-s", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
