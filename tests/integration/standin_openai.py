"""StandInOpenAIServer: a stand-in for an OpenAI-compatible chat server, NOT a real engine.

A real HTTP server on 127.0.0.1 in its own process, answering GET /v1/models and
POST /v1/chat/completions (streamed as ``data: {chunk}`` lines ending in ``data: [DONE]``, or as one
JSON answer) in the shapes vLLM and LMDeploy send. It computes nothing: token i has the text
`` t{i}``; a finish chunk, then a usage-only chunk when ``stream_options.include_usage`` asks for it.
``prompt_tokens`` is 10 plus, per image, 3 wrapper tokens and 256 per tile (``STANDIN_TILES``).
It stops after ``max_tokens`` tokens. Each access-log line names the serial number of the TCP
connection the request came on (``conn 1``), so tests can see whether a client reused its connection.

Behaviour switches (environment):
  STANDIN_TOKEN_DELAY_S  pause before each streamed token
  STANDIN_FIRST_TOKEN_DELAY_S  pause once, before the first token (a known TTFT); the log says
                         how long after reading the request line the first token really left
  STANDIN_BIG_DELTA_BYTES  the first token's text is this many bytes long (one huge event)
  STANDIN_DRIBBLE_S      after the role chunk, send one byte of a never-ending event this often
                         (for at most 10 s, then close)
  STANDIN_TILES          tiles it claims per image (default 7)
  STANDIN_STRICT         refuse keys outside the OpenAI standard with HTTP 422, as transformers serve does
  STANDIN_MODEL          the one model id it serves (default "standin-model")
  STANDIN_FLAVOUR        vllm: GET /version answers {"version"} as vLLM's does; sglang: GET
                         /get_server_info carries "version" as SGLang's does; unset: neither exists
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDARD_KEYS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed", "stream",
                 "stream_options", "top_p", "stop"}  # fmt: skip


STANDIN_VERSIONS = {"vllm": "0.11.0", "sglang": "0.5.23"}


class StandInOpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int):
        super().__init__((host, port), _Handler)
        self.model = os.environ.get("STANDIN_MODEL", "standin-model")
        self.tiles = int(os.environ.get("STANDIN_TILES", "7"))
        self.delay_s = float(os.environ.get("STANDIN_TOKEN_DELAY_S", "0"))
        self.strict = bool(os.environ.get("STANDIN_STRICT"))
        self.first_delay_s = float(os.environ.get("STANDIN_FIRST_TOKEN_DELAY_S", "0"))
        self.big_delta = int(os.environ.get("STANDIN_BIG_DELTA_BYTES", "0"))
        self.dribble_s = float(os.environ.get("STANDIN_DRIBBLE_S", "0"))
        self.connections = itertools.count(1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn does: small writes leave at once
    server: StandInOpenAIServer

    def setup(self) -> None:
        super().setup()
        self.connection_number = next(self.server.connections)

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"stand-in conn {self.connection_number}: " + format % args + "\n")

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        elif (os.environ.get("STANDIN_FLAVOUR"), self.path) in (("vllm", "/version"), ("sglang", "/get_server_info")):
            self._json(200, {"version": STANDIN_VERSIONS[os.environ["STANDIN_FLAVOUR"]]})
        else:
            self._json(404, {"detail": "Not Found"})

    def parse_request(self) -> bool:
        self.received_ns = time.perf_counter_ns()  # the request line has just arrived
        return super().parse_request()

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._json(404, {"detail": "Not Found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        unexpected = set(body) - STANDARD_KEYS
        if self.server.strict and unexpected:
            self._json(422, {"detail": f"Unexpected fields in the request: {sorted(unexpected)}"})
            return
        images = sum(
            part.get("type") == "image_url"
            for message in body["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
        )
        usage = {"prompt_tokens": 10 + images * (3 + 256 * self.server.tiles), "completion_tokens": body["max_tokens"]}
        if body.get("stream"):
            self._stream(body, usage)
        else:
            text = "".join(f" t{i}" for i in range(body["max_tokens"]))
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            self._json(200, {"id": "c", "object": "chat.completion", "choices": [choice], "usage": usage})

    def _stream(self, body: dict, usage: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        if self.server.dribble_s:
            self._dribble()
            return
        time.sleep(self.server.first_delay_s)
        for i in range(body["max_tokens"]):
            time.sleep(self.server.delay_s)
            text = "x" * self.server.big_delta if i == 0 and self.server.big_delta else f" t{i}"
            self._event({"choices": [{"index": 0, "delta": {"content": text}}]})
            if i == 0:
                sys.stderr.write(f"stand-in first token {time.perf_counter_ns() - self.received_ns} ns after the request\n")
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({"choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _dribble(self) -> None:
        self._chunk(b"data: ")
        ends = time.monotonic() + 10
        while time.monotonic() < ends:
            time.sleep(self.server.dribble_s)
            self._chunk(b"x")
        self.close_connection = True

    def _event(self, chunk: dict) -> None:
        self._chunk(f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', **chunk})}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(prog="StandInOpenAIServer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = StandInOpenAIServer(args.host, args.port)
    print(f"StandInOpenAIServer pid {os.getpid()} on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
