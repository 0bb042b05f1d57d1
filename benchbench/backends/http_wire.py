"""Keep-alive HTTP/1.1 connections as raw asyncio protocols: the one HTTP client under every
server backend, one request at a time or a load point's many.

Why not a library: measured with ``benchmarks/http_client.py`` against a stand-in with a known
first-token delay, httpcore (the engine under httpx) added 1.2 ms to every TTFT on an idle
machine, 0.6 ms of it before the request left (its request model, pool and h11 serialisation)
and 0.2 ms between the token's bytes arriving and their timestamp; a bare socket adds 0.03 ms.
Under load (``benchmarks/client_capacity.py``) httpx's async client and asyncio's streams cost
several times the CPU per streamed request of a protocol that parses bytes as they arrive, and
that CPU becomes scheduling lag. So a request is rendered to bytes before the clock starts and
leaves in one write, and a response is parsed in ``data_received``: each SSE event reaches its
consumer (or is stamped) the moment its bytes arrive.

It speaks what benchmark servers need: requests with a sized body, responses chunked, sized or
read-to-close, TLS for https URLs, SSE through the linear-time decoder with its size cap.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from benchbench.backends.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder

MAX_BODY_BYTES = 64 << 20

EventHandler = Callable[[str], bool]
"""Takes one SSE event's data as it arrives; True once the answer is complete."""


class HttpProtocolError(Exception):
    """The server's bytes are not the HTTP/1.1 this client reads."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host and port of a server URL, and the path prefix it carries."""

    host: str
    port: int
    tls: bool = False
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        tls = parts.scheme == "https"
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        """host[:port] as a URL and the Host header write it (the scheme's default port left out)"""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.authority}{self.prefix}"


def render_request(origin: Origin, method: str, path: str, body: bytes | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:  # fmt: skip
    """A complete request in one buffer, rendered before the clock starts."""
    lines = [f"{method} {origin.prefix}{path} HTTP/1.1", f"Host: {origin.authority}", "Accept-Encoding: identity"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Response:
    status: int = 0
    head_ns: int = 0
    """when the status line and headers had arrived (first byte, near enough)"""
    events: list[tuple[int, str]] = field(default_factory=list)
    """(arrival time ns, SSE data) in order, when no handler took them"""
    body: bytes = b""
    """the whole body of a non-SSE answer (an error's message, a JSON object)"""
    complete: bool = False
    """the event handler said the answer was complete"""
    reusable: bool = True


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` writes at once and returns a future of its response.

    A 200 answer to a request made with ``sse=True`` is decoded as server-sent events: each
    event's data goes to ``on_event`` as it arrives, or into ``Response.events`` with its
    arrival time. Anything else is read as a body. An exception from ``on_event`` fails the
    future with it (and the connection is then not reusable)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._future: asyncio.Future | None = None
        self._closed_error: Exception | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    @property
    def alive(self) -> bool:
        return self._closed_error is None and self.transport is not None and not self.transport.is_closing()

    def stale(self) -> bool:
        """An idle connection the server closed (or wrote to) while no loop was running to see it."""
        if not self.alive:
            return True
        sock = self.transport.get_extra_info("socket")
        return sock is not None and bool(select.select([sock.fileno()], [], [], 0)[0])

    def request(self, data: bytes, sse: bool = False, on_event: EventHandler | None = None,
                max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> asyncio.Future:  # fmt: skip
        if not self.alive:
            raise ConnectionResetError("connection closed by the server")
        self._response, self._buffer, self._state = Response(), bytearray(), "head"
        self._sse, self._on_event, self._max_event_bytes = sse, on_event, max_event_bytes
        self._decoder: SSEDecoder | None = None
        self._future = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._future

    def data_received(self, data: bytes) -> None:
        if self._future is None or self._future.done():
            return
        self._buffer += data
        try:
            self._parse(time.perf_counter_ns())
        except Exception as exc:  # unreadable framing, the SSE decoder's size cap, or the event handler's own
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_error = exc or ConnectionResetError("connection closed by the server")
        if self._future is None or self._future.done():
            return
        if self._state != "close":
            self._future.set_exception(self._closed_error)
            return
        try:
            self._take(bytes(self._buffer), time.perf_counter_ns())
            self._end(time.perf_counter_ns())
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._response.reusable = False
        self._future.set_exception(exc)
        self.close()

    def _parse(self, now: int) -> None:
        if self._state == "head":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(self._buffer[:end]), now)
            del self._buffer[: end + 4]
        if self._state == "chunked":
            self._chunks(now)
        elif self._state == "sized" and len(self._buffer) >= self._length:
            self._take(bytes(self._buffer[: self._length]), now)
            self._end(now)
        elif self._state == "close":
            self._take(bytes(self._buffer), now)
            self._buffer.clear()

    def _head(self, head: bytes, now: int) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        response = self._response
        response.status, response.head_ns = _number(rest[:3], 10, "status line", lines[0]), now
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip().lower()
        connection = headers.get(b"connection", b"keep-alive" if version == b"HTTP/1.1" else b"close")
        response.reusable = connection != b"close"
        if self._sse and response.status == 200:
            self._decoder = SSEDecoder(self._max_event_bytes)
        if response.status in (204, 304):
            self._state, self._length = "sized", 0
        elif headers.get(b"transfer-encoding") == b"chunked":
            self._state = "chunked"
        elif b"content-length" in headers:
            self._state, self._length = "sized", _number(headers[b"content-length"], 10, "Content-Length")
        else:
            self._state, response.reusable = "close", False

    def _chunks(self, now: int) -> None:
        buffer, start = self._buffer, 0
        while not self._future.done():
            line_end = buffer.find(b"\r\n", start)
            if line_end < 0:
                break
            size = _number(bytes(buffer[start:line_end]).split(b";", 1)[0], 16, "chunk size")
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            start = data_end + 2
            if size == 0:
                self._end(now)
                break
            self._take(bytes(buffer[line_end + 2 : data_end]), now)
        del buffer[:start]

    def _take(self, data: bytes, now: int) -> None:
        if self._decoder is None:
            self._response.body += data
            if len(self._response.body) > MAX_BODY_BYTES:
                raise HttpProtocolError(f"answer larger than {MAX_BODY_BYTES} bytes")
            return
        for event in self._decoder.feed(data):
            self._event(event, now)

    def _event(self, data: str, now: int) -> None:
        response = self._response
        if self._on_event is None:
            response.events.append((now, data))
        elif not response.complete:
            response.complete = self._on_event(data)

    def _end(self, now: int) -> None:
        if self._decoder is not None and (last := self._decoder.close()) is not None:
            self._event(last, now)
        self._future.set_result(self._response)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _number(text: bytes, base: int, what: str, shown: bytes | None = None) -> int:
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if value < 0:
        raise HttpProtocolError(f"unreadable HTTP from the server: {what} {(shown or text)[:80]!r}")
    return value


class ConnectionPool:
    """Idle keep-alive connections to one origin, reused most-recent first; ``opened`` counts
    every connection it set up (a request that needed a new one has its set-up in its times)."""

    def __init__(self, origin: Origin):
        self.origin = origin
        self.opened = 0
        self._idle: list[Connection] = []
        self._ssl = ssl.create_default_context() if origin.tls else None

    async def acquire(self) -> Connection:
        while self._idle:  # a server may have closed an idle one (uvicorn does after 5 s)
            connection = self._idle.pop()
            if not connection.stale():
                return connection
            connection.close()
        return await self._open()

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(Connection, self.origin.host, self.origin.port, ssl=self._ssl)
        self.opened += 1
        return connection

    def release(self, connection: Connection, reusable: bool) -> None:
        if reusable and connection.alive:
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
