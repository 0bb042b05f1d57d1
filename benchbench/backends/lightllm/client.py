"""A standard-library HTTP client for LightLLM's /health, /generate and /generate_stream."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from benchbench.backends.http_json import JsonHttp
from benchbench.backends.lightllm.protocol import (
    LightLLMResult,
    StreamAccumulator,
    error_message,
    parse_generate_response,
    parse_stream_line,
)
from benchbench.errors import BackendError

MAX_EVENT_BYTES = 1 << 20


class ConnectionLost(BackendError):
    """The server could not be reached or dropped the connection (as opposed to answering an error)."""


class LightLLMClient:
    """Talks to one server; every failure is a BackendError that names the URL."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise BackendError(f"lightllm url {url!r}: give it as http://HOST:PORT")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = JsonHttp("lightllm server", self.url, parts.hostname, parts.port or 80, timeout_s, ConnectionLost)

    def health(self) -> int:
        """HTTP status of GET /health (200 healthy, 503 not yet); raises when nothing answers."""
        status, _body = self.http.exchange("GET", "/health", None)
        return status

    def generate(self, body: dict[str, Any]) -> LightLLMResult:
        """POST /generate and parse the whole answer."""
        status, raw = self.http.exchange("POST", "/generate", body)
        if status != 200:
            raise BackendError(f"lightllm server {self.url} refused /generate: {error_message(status, raw)}")
        try:
            return parse_generate_response(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"lightllm server {self.url}: /generate answer is not LightLLM's shape ({exc!r})") from None

    def generate_stream(self, body: dict[str, Any], on_tokens: Callable[[int], None]) -> LightLLMResult:
        """POST /generate_stream, calling ``on_tokens(n)`` as each event arrives."""
        deadline = time.monotonic() + self.timeout_s
        connection = self.http.connection()
        try:
            response = self.http.send(connection, "POST", "/generate_stream", body)
            if response.status != 200:
                raise BackendError(
                    f"lightllm server {self.url} refused /generate_stream: {error_message(response.status, response.read())}"
                )
            accumulated = StreamAccumulator()
            while not accumulated.finished:
                line = self._read_line(response, accumulated)
                event = parse_stream_line(line)
                if event is not None and (added := accumulated.add(event)) > 0:
                    on_tokens(added)
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"lightllm server {self.url}: request still streaming after {self.timeout_s:g} s; "
                        "raise the request timeout"
                    )
            return accumulated.result()
        except ValueError as exc:
            raise BackendError(f"lightllm server {self.url}: stream event is not LightLLM's JSON ({exc})") from None
        finally:
            connection.close()

    def _read_line(self, response: http.client.HTTPResponse, accumulated: StreamAccumulator) -> bytes:
        line = self.http.read_line(response, MAX_EVENT_BYTES, accumulated.output_tokens)
        if not line:
            raise ConnectionLost(
                f"lightllm server {self.url}: stream ended after {accumulated.output_tokens} token(s) "
                "without finishing (connection closed); the server may have crashed"
            )
        return line
