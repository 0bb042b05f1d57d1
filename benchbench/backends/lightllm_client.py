"""A standard-library HTTP client for LightLLM's /health, /generate and /generate_stream."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from benchbench.backends.lightllm_protocol import (
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
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s

    def health(self) -> int:
        """HTTP status of GET /health (200 healthy, 503 not yet); raises when nothing answers."""
        status, _body = self._exchange("GET", "/health", None)
        return status

    def generate(self, body: dict[str, Any]) -> LightLLMResult:
        """POST /generate and parse the whole answer."""
        status, raw = self._exchange("POST", "/generate", body)
        if status != 200:
            raise BackendError(f"lightllm server {self.url} refused /generate: {error_message(status, raw)}")
        try:
            return parse_generate_response(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"lightllm server {self.url}: /generate answer is not LightLLM's shape ({exc!r})") from None

    def generate_stream(self, body: dict[str, Any], on_tokens: Callable[[int], None]) -> LightLLMResult:
        """POST /generate_stream, calling ``on_tokens(n)`` as each event arrives."""
        deadline = time.monotonic() + self.timeout_s
        connection = self._connection()
        try:
            response = self._send(connection, "POST", "/generate_stream", body)
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
        try:
            line = response.readline(MAX_EVENT_BYTES)
        except TimeoutError:
            raise BackendError(
                f"lightllm server {self.url}: no stream event for {self.timeout_s:g} s after "
                f"{accumulated.output_tokens} token(s); raise the request timeout or check the server"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            line, reason = b"", repr(exc)
        else:
            reason = "connection closed"
        if not line:
            raise ConnectionLost(
                f"lightllm server {self.url}: stream ended after {accumulated.output_tokens} token(s) "
                f"without finishing ({reason}); the server may have crashed"
            )
        return line

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _send(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: dict[str, Any] | None
    ) -> http.client.HTTPResponse:
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            connection.request(method, path, body=payload, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionLost(
                f"cannot reach lightllm server {self.url}{path} ({exc!r}); start it or check the url"
            ) from None

    def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        connection = self._connection()
        try:
            response = self._send(connection, method, path, body)
            try:
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise ConnectionLost(f"lightllm server {self.url}{path}: answer cut off ({exc!r})") from None
        finally:
            connection.close()
