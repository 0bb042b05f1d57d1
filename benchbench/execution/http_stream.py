"""Keep-alive HTTP/1.1 connections as raw asyncio protocols, for the load client's SSE requests.

Measured against the client target (benchmarks/client_capacity.py), httpx's async client and
asyncio's own streams cost several times the CPU per streamed request of a protocol that parses
bytes as they arrive, and under load that CPU becomes scheduling lag. It speaks only what the
load client needs: a POST rendered once before the clock, a chunked, sized or read-to-close
response, and SSE ``data:`` payloads stamped with the time their bytes arrived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


def render_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete request, rendered once before the clock starts."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             "Accept: text/event-stream", f"Content-Length: {len(body)}"]  # fmt: skip
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    status: int = 0
    head_ns: int = 0
    """when the status line and headers had arrived (first byte, near enough)"""
    events: list[tuple[int, bytes]] = field(default_factory=list)
    """(arrival time ns, SSE data payload) in order"""
    body: bytes = b""
    """the whole body of a non-SSE answer (an error's message)"""
    reusable: bool = True


class HttpProtocolError(ValueError):
    """The server's bytes are not the HTTP/1.1 this client reads."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` writes and returns a future of its response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._future: asyncio.Future | None = None
        self._closed_error: Exception | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    @property
    def alive(self) -> bool:
        return self._closed_error is None

    def request(self, data: bytes) -> asyncio.Future:
        if self._closed_error is not None:
            raise ConnectionResetError("connection closed by the server")
        self._response, self._buffer, self._pending, self._state = Response(), b"", b"", "head"
        self._future = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._future

    def data_received(self, data: bytes) -> None:
        if self._future is None or self._future.done():
            return
        self._buffer += data
        try:
            self._parse(time.perf_counter_ns())
        except (ValueError, IndexError) as exc:
            self._future.set_exception(HttpProtocolError(f"unreadable HTTP from the server ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_error = exc or ConnectionResetError("connection closed by the server")
        if self._future is not None and not self._future.done():
            if self._state == "close":
                self._take(self._buffer, time.perf_counter_ns())
                self._future.set_result(self._response)
            else:
                self._future.set_exception(self._closed_error)

    def _parse(self, now: int) -> None:
        if self._state == "head":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(self._buffer[:end], now)
            self._buffer = self._buffer[end + 4 :]
        if self._state == "chunked":
            self._chunks(now)
        elif self._state == "sized" and len(self._buffer) >= self._length:
            self._take(self._buffer[: self._length], now)
            self._future.set_result(self._response)

    def _head(self, head: bytes, now: int) -> None:
        lines = head.split(b"\r\n")
        response = self._response
        response.status, response.head_ns = int(lines[0].split(b" ", 2)[1]), now
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip().lower()
        response.reusable = headers.get(b"connection") != b"close"
        self._sse = headers.get(b"content-type", b"").startswith(b"text/event-stream")
        if headers.get(b"transfer-encoding") == b"chunked":
            self._state = "chunked"
        elif b"content-length" in headers:
            self._state, self._length = "sized", int(headers[b"content-length"])
        else:
            self._state, response.reusable = "close", False

    def _chunks(self, now: int) -> None:
        buffer, start = self._buffer, 0
        while True:
            line_end = buffer.find(b"\r\n", start)
            if line_end < 0:
                break
            size = int(buffer[start:line_end].split(b";", 1)[0], 16)
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            if size == 0:
                self._take(b"", now)
                self._future.set_result(self._response)
                return
            self._take(buffer[line_end + 2 : data_end], now)
            start = data_end + 2
        self._buffer = buffer[start:]

    def _take(self, data: bytes, now: int) -> None:
        """Keep the body; for SSE split complete events off, keeping the incomplete rest."""
        if not self._sse:
            self._response.body += data
            return
        *events, self._pending = (self._pending + data.replace(b"\r\n", b"\n")).split(b"\n\n")
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._response.events.append((now, line[5:].strip()))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """Idle keep-alive connections to one server, reused most-recent first."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._idle: list[Connection] = []

    async def acquire(self) -> Connection:
        while self._idle:  # a server may have closed an idle one (uvicorn does after 5 s)
            connection = self._idle.pop()
            if connection.alive:
                return connection
        return await self._open()

    async def _open(self) -> Connection:
        _, connection = await asyncio.get_running_loop().create_connection(Connection, self.host, self.port)
        return connection

    def release(self, connection: Connection, reusable: bool) -> None:
        if reusable:
            self._idle.append(connection)
        else:
            connection.close()

    async def prewarm(self, count: int) -> None:
        """Open connections before the clock starts, so set-up stays out of the measurement."""
        opened = [await self._open() for _ in range(max(0, count - len(self._idle)))]
        self._idle.extend(opened)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
