"""A standard-library HTTP client for an OpenAI-compatible server: /v1/models and
/v1/chat/completions, streamed (SSE) or not. Every failure is a BackendError naming the URL."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from benchbench.backends.http_json import JsonHttp
from benchbench.backends.openai.responses import (
    DONE,
    ChatResult,
    StreamAccumulator,
    StreamError,
    error_text,
    parse_completion,
    parse_sse_line,
)
from benchbench.errors import BackendError

MAX_LINE_BYTES = 1 << 20
CHAT_PATH = "/v1/chat/completions"


class ServerUnreachable(BackendError):
    """Nothing answered, or the connection dropped before the answer was complete."""


class OpenAIClient:
    def __init__(self, url: str, timeout_s: float, api_key: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"openai url {url!r}: give it as http://HOST:PORT (the server root or its /v1)")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json, text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = JsonHttp(
            "openai server", self.url, parts.hostname, parts.port, timeout_s, ServerUnreachable,
            https=parts.scheme == "https", prefix=parts.path.rstrip("/").removesuffix("/v1"), headers=headers,
        )  # fmt: skip

    def models(self) -> list[str] | None:
        """Ids the server lists at /v1/models, or None when it has no such endpoint."""
        status, raw = self.http.exchange("GET", "/v1/models", None)
        if status == 404:
            return None
        answer = self._answer_json(status, raw, "/v1/models")
        return [str(entry.get("id")) for entry in answer.get("data") or [] if isinstance(entry, dict)]

    def complete(self, body: dict[str, Any]) -> ChatResult:
        """POST a non-streamed chat completion and parse the answer."""
        status, raw = self.http.exchange("POST", CHAT_PATH, body)
        answer = self._answer_json(status, raw, CHAT_PATH)
        try:
            return parse_completion(answer)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"openai server {self.url}: {CHAT_PATH} answer is not a chat completion ({exc!r})") from None

    def stream(self, body: dict[str, Any], on_tokens: Callable[[int], None], usage_per_chunk: bool) -> ChatResult:
        """POST a streamed chat completion, calling ``on_tokens(n)`` as chunks with tokens arrive."""
        deadline = time.monotonic() + self.timeout_s
        connection = self.http.connection()
        try:
            response = self.http.send(connection, "POST", CHAT_PATH, body)
            if response.status != 200:
                raise self._refused(response.status, response.read(), CHAT_PATH)
            accumulated = StreamAccumulator(usage_per_chunk=usage_per_chunk)
            while (event := parse_sse_line(self._read_line(response, accumulated))) is not DONE:
                if event is not None and (added := accumulated.add(event)) > 0:
                    on_tokens(added)
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"openai server {self.url}: request still streaming after {self.timeout_s:g} s; raise the request timeout"
                    )
        except _EndOfStream:
            pass
        except StreamError as exc:
            raise BackendError(f"openai server {self.url} reported an error mid-stream: {exc}") from None
        except ValueError as exc:
            raise BackendError(f"openai server {self.url}: stream event is not chat.completion.chunk JSON ({exc})") from None
        finally:
            connection.close()
        if accumulated.finish_reason is None:
            raise ServerUnreachable(
                f"openai server {self.url}: stream ended after {accumulated.counted} token(s) without a "
                "finish_reason; the server may have crashed"
            )
        return accumulated.result()

    def _read_line(self, response: http.client.HTTPResponse, accumulated: StreamAccumulator) -> bytes:
        line = self.http.read_line(response, MAX_LINE_BYTES, accumulated.counted)
        if not line:
            raise _EndOfStream
        return line

    def _answer_json(self, status: int, raw: bytes, path: str) -> dict[str, Any]:
        if status != 200:
            raise self._refused(status, raw, path)
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise BackendError(f"openai server {self.url}: {path} did not answer a JSON object")
        return answer

    def _refused(self, status: int, raw: bytes, path: str) -> BackendError:
        """The server's refusal, quoting its message (OpenAI ``error``, FastAPI ``detail``) or body."""
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            detail = error_text(answer.get("error") or answer)
        else:
            detail = raw[:300].decode("utf-8", "replace")
        return BackendError(f"openai server {self.url} refused {path}: HTTP {status}: {detail}")


class _EndOfStream(Exception):
    """The response body ended (transformers serve sends no [DONE])."""
