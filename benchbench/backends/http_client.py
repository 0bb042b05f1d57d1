"""The synchronous face of the HTTP wire for the server backends: JSON exchanges and SSE streams
to one server over kept-alive connections, each call under one deadline.

Why pooled: opening a TCP connection (and a server-side handler thread) per request put the
handshake inside every TTFT. A backend opens its client in ``load`` and probes the server there,
so the connection exists before the clock starts; later requests reuse it, and a request that
had to open a new one (the server closed an idle connection) says so in ``connections_opened``.

The deadline covers connecting, sending, the wait for headers and every byte of the body, so
neither a black-hole server nor one that drips bytes can hold a request past it. Requests are
rendered to bytes by the caller (``render``) before its clock starts; the connections' protocol
hands each SSE event to the caller's sink as its bytes arrive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Protocol

from benchbench.backends.http_wire import ConnectionPool, HttpProtocolError, Origin, Response, render_request
from benchbench.backends.sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge
from benchbench.errors import BackendError


class ConnectionLost(BackendError):
    """Nothing answered, or the connection broke before the answer was complete."""


class Refused(BackendError):
    """The server answered with an HTTP status other than 200; ``body`` is what it said."""

    def __init__(self, message: str, status: int, body: bytes):
        super().__init__(message)
        self.status, self.body = status, body


class EventSink(Protocol):
    """Takes a stream's events; the HTTP layer needs nothing else from the protocol on top."""

    def take(self, data: str) -> bool:
        """One event's data; True once the answer is complete (the rest of the body is ignored)."""

    def progress(self) -> str:
        """How far the answer came, for error messages (e.g. "3 token(s)")."""


class ServerHttp:
    """Calls to one server from synchronous code, on a private event loop."""

    def __init__(self, label: str, url: str, headers: Mapping[str, str] | None = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):  # fmt: skip
        try:
            self.origin = Origin.parse(url)
        except ValueError:
            raise BackendError(f"{label} url {url!r}: give it as http://HOST:PORT") from None
        self.label, self.headers, self.max_event_bytes = label, dict(headers or {}), max_event_bytes
        self._loop = asyncio.new_event_loop()
        self._pool = ConnectionPool(self.origin)

    @property
    def url(self) -> str:
        return self.origin.url

    @property
    def connections_opened(self) -> int:
        return self._pool.opened

    def render(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        """The whole request as bytes, with this client's headers: render before the clock starts."""
        content = None if body is None else json.dumps(body).encode("utf-8")
        return render_request(self.origin, method, path, content, self.headers)

    def exchange(self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float) -> tuple[int, bytes]:
        """One request: (HTTP status, whole body), all within ``timeout_s``."""
        response = self.send(self.render(method, path, body), path, timeout_s)
        return response.status, response.body

    def send(self, request: bytes, path: str, timeout_s: float) -> Response:
        """A rendered request (to ``path``, named in errors) and its whole answer within ``timeout_s``."""
        return self._call(request, path, timeout_s, None)

    def stream(self, request: bytes, path: str, timeout_s: float, sink: EventSink) -> bool:
        """Send a rendered request and feed each SSE event to ``sink`` until it says the answer is
        complete (True) or the body ends (False). A non-200 answer raises Refused."""
        response = self._call(request, path, timeout_s, sink)
        if response.status != 200:
            raise Refused(f"{self.label} {self.url} refused {path}: HTTP {response.status}", response.status, response.body)
        return response.complete

    def _call(self, request: bytes, path: str, timeout_s: float, sink: EventSink | None) -> Response:
        try:
            return self._loop.run_until_complete(self._roundtrip(request, timeout_s, sink))
        except TimeoutError:
            if sink is None:
                raise BackendError(f"{self.label} {self.url}{path}: no complete answer within {timeout_s:g} s; "
                                   "check the server or raise the time-out") from None  # fmt: skip
            raise BackendError(f"{self.label} {self.url}{path}: answer not complete within {timeout_s:g} s "
                               f"(after {sink.progress()}); raise the request time-out or check the server") from None  # fmt: skip
        except EventTooLarge as exc:
            raise BackendError(f"{self.label} {self.url}{path}: {exc} (after {sink.progress()}); the stream is malformed") from None
        except HttpProtocolError as exc:
            raise BackendError(f"{self.label} {self.url}{path}: {exc}; check the server") from None
        except _Unreachable as exc:
            raise ConnectionLost(f"cannot reach {self.label} {self.url}{path} ({exc.__cause__!r}); start it or check the url") from None
        except OSError as exc:
            where = f"stream ended after {sink.progress()} without finishing" if sink else "answer cut off"
            raise ConnectionLost(f"{self.label} {self.url}{path}: {where} ({exc!r}); the server may have crashed") from None

    async def _roundtrip(self, request: bytes, timeout_s: float, sink: EventSink | None) -> Response:
        async with asyncio.timeout(timeout_s):
            try:
                connection = await self._pool.acquire()
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise
                raise _Unreachable() from exc
            try:
                response = await connection.request(request, sse=sink is not None, on_event=sink and sink.take,
                                                    max_event_bytes=self.max_event_bytes)  # fmt: skip
            except BaseException:
                connection.close()
                raise
        self._pool.release(connection, response.reusable)
        return response

    def close(self) -> None:
        self._pool.close()
        self._loop.run_until_complete(asyncio.sleep(0))  # let the transports finish closing
        self._loop.close()


class _Unreachable(Exception):
    """Connecting failed; the cause is the socket's error."""


def new_connection_details(opened: int) -> dict[str, Any]:
    """A record's note when a request had to open a connection, whose set-up then sits in its TTFT."""
    if not opened:
        return {}
    return {"connection_note": f"opened {opened} new connection(s) during the request (set-up included in its times)"}
