"""The HTTP client of an OpenAI-compatible server: /v1/models and /v1/chat/completions, streamed
(SSE) or not, over one keep-alive connection. Every failure is a BackendError naming the URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchbench.backends.http_client import ConnectionLost, Refused, ServerHttp
from benchbench.backends.openai.responses import (
    DONE,
    ChatResult,
    StreamAccumulator,
    StreamError,
    error_text,
    parse_completion,
    parse_sse_data,
)
from benchbench.errors import BackendError

CHAT_PATH = "/v1/chat/completions"


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
        root = self.url.removesuffix("/v1")
        self.http = ServerHttp("openai server", root, headers=headers)

    def models(self, timeout_s: float) -> list[str] | None:
        """Ids the server lists at /v1/models, or None when it has no such endpoint."""
        status, raw = self.http.exchange("GET", "/v1/models", None, timeout_s)
        if status == 404:
            return None
        answer = self._answer_json(status, raw, "/v1/models")
        return [str(entry.get("id")) for entry in answer.get("data") or [] if isinstance(entry, dict)]

    def get_json(self, path: str, timeout_s: float) -> dict[str, Any] | None:
        """GET ``path`` as a JSON object; None when the server has no such endpoint or it is not JSON."""
        status, raw = self.http.exchange("GET", path, None, timeout_s)
        try:
            answer = json.loads(raw) if status == 200 else None
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def chat_request(self, body: dict[str, Any]) -> bytes:
        """A chat completion request rendered to bytes (before the clock starts)."""
        return self.http.render("POST", CHAT_PATH, body)

    def complete(self, request: bytes, timeout_s: float | None = None) -> ChatResult:
        """Send a rendered non-streamed chat completion and parse the answer."""
        response = self.http.send(request, CHAT_PATH, timeout_s or self.timeout_s)
        answer = self._answer_json(response.status, response.body, CHAT_PATH)
        try:
            return parse_completion(answer)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"openai server {self.url}: {CHAT_PATH} answer is not a chat completion ({exc!r})") from None

    def stream(self, request: bytes, on_tokens: Callable[[int], None], usage_per_chunk: bool) -> ChatResult:
        """Send a rendered streamed chat completion, calling ``on_tokens(n)`` as chunks with tokens arrive."""
        sink = ChunkSink(on_tokens, usage_per_chunk)
        try:
            self.http.stream(request, CHAT_PATH, self.timeout_s, sink)
        except Refused as exc:
            raise self._refused(exc.status, exc.body, CHAT_PATH) from None
        except StreamError as exc:
            raise BackendError(f"openai server {self.url} reported an error mid-stream: {exc}") from None
        except ValueError as exc:
            raise BackendError(f"openai server {self.url}: stream event is not chat.completion.chunk JSON ({exc})") from None
        if not sink.complete:  # transformers serve sends no [DONE]: the body's end is the end
            raise ConnectionLost(
                f"openai server {self.url}: stream ended after {sink.progress()} without a "
                "finish_reason; the server may have crashed"
            )
        return sink.result()

    def close(self) -> None:
        self.http.close()

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


@dataclass
class ChunkSink:
    """A chat stream's events into its accumulator, ``on_tokens(n)`` per chunk with tokens."""

    on_tokens: Callable[[int], None]
    usage_per_chunk: bool = False
    accumulated: StreamAccumulator = field(init=False)

    def __post_init__(self) -> None:
        self.accumulated = StreamAccumulator(usage_per_chunk=self.usage_per_chunk)

    def take(self, data: str) -> bool:
        chunk = parse_sse_data(data)
        if chunk is DONE:
            return True
        if (added := self.accumulated.add(chunk)) > 0:
            self.on_tokens(added)
        return False

    def progress(self) -> str:
        return f"{self.accumulated.counted} token(s)"

    @property
    def complete(self) -> bool:
        return self.accumulated.finish_reason is not None

    def result(self) -> ChatResult:
        return self.accumulated.result()
