"""The HTTP client of LightLLM's /health, /generate and /generate_stream, over one keep-alive
connection; every failure is a BackendError that names the URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchbench.backends.http_client import ConnectionLost, Refused, ServerHttp
from benchbench.backends.lightllm.protocol import (
    LightLLMResult,
    StreamAccumulator,
    StreamError,
    error_message,
    parse_generate_response,
    parse_stream_data,
)
from benchbench.errors import BackendError


class LightLLMClient:
    """Talks to one server; every failure is a BackendError that names the URL."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise BackendError(f"lightllm url {url!r}: give it as http://HOST:PORT")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = ServerHttp("lightllm server", self.url)

    def health(self, timeout_s: float) -> int:
        """HTTP status of GET /health (200 healthy, 503 not yet); raises when nothing answers."""
        status, _body = self.http.exchange("GET", "/health", None, timeout_s)
        return status

    def render(self, path: str, body: dict[str, Any]) -> bytes:
        """A POST to ``path`` (/generate or /generate_stream) rendered to bytes, before the clock starts."""
        return self.http.render("POST", path, body)

    def generate(self, request: bytes) -> LightLLMResult:
        """Send a rendered POST /generate and parse the whole answer."""
        response = self.http.send(request, "/generate", self.timeout_s)
        status, raw = response.status, response.body
        if status != 200:
            raise BackendError(f"lightllm server {self.url} refused /generate: {error_message(status, raw)}")
        try:
            return parse_generate_response(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"lightllm server {self.url}: /generate answer is not LightLLM's shape ({exc!r})") from None

    def generate_stream(self, request: bytes, on_tokens: Callable[[int], None]) -> LightLLMResult:
        """Send a rendered POST /generate_stream, calling ``on_tokens(n)`` as each event arrives."""
        sink = TokenSink(on_tokens)
        try:
            finished = self.http.stream(request, "/generate_stream", self.timeout_s, sink)
        except Refused as exc:
            raise BackendError(f"lightllm server {self.url} refused /generate_stream: {error_message(exc.status, exc.body)}") from None
        except StreamError as exc:
            raise BackendError(f"lightllm server {self.url} reported an error mid-stream after {sink.progress()}: {exc}") from None
        except ValueError as exc:
            raise BackendError(f"lightllm server {self.url}: stream event is not LightLLM's JSON ({exc})") from None
        if not finished:
            raise ConnectionLost(
                f"lightllm server {self.url}: stream ended after {sink.progress()} without finishing "
                "(connection closed); the server may have crashed"
            )
        return sink.result()

    def close(self) -> None:
        self.http.close()


@dataclass
class TokenSink:
    """/generate_stream's events into its accumulator, ``on_tokens(n)`` per event with tokens."""

    on_tokens: Callable[[int], None]
    accumulated: StreamAccumulator = field(default_factory=StreamAccumulator)

    def take(self, data: str) -> bool:
        if (added := self.accumulated.add(parse_stream_data(data))) > 0:
            self.on_tokens(added)
        return self.accumulated.finished

    def progress(self) -> str:
        return f"{self.accumulated.output_tokens} token(s)"

    @property
    def complete(self) -> bool:
        return self.accumulated.finished

    def result(self) -> LightLLMResult:
        return self.accumulated.result()
