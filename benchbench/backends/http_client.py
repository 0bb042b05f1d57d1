"""One pooled, keep-alive HTTP client per server backend, async at the core.

Why pooled: opening a TCP connection (and a server-side handler thread) per request put the
handshake inside every TTFT. A backend opens its client in ``load`` and probes the server there,
so the connection exists before the clock starts; later requests reuse it, and a request that
had to open a new one (the server closed an idle connection) says so in ``connections_opened``.

Built on httpcore, the connection pool and HTTP/1.1 engine under httpx: httpx's request model
alone (URL merging, header objects) cost 0.7 ms per request on this machine, all of it inside
TTFT, and its transport takes no network backend, which the one-write stream below needs.

Every call runs under one deadline (``asyncio.wait_for``) that covers connecting, sending, the
wait for headers and every byte of the body, so neither a black-hole server nor one that drips
bytes can hold a request past it. Streamed bodies go through the linear-time SSE decoder with
its size cap. ``ServerHttp`` runs the same coroutines on a private event loop for the
synchronous runner; the load generator awaits ``AsyncServerHttp`` directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import httpcore

from benchbench.backends.sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, SSEDecoder
from benchbench.errors import BackendError

MAX_BODY_BYTES = 64 << 20
TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError)
T = TypeVar("T")


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


class AsyncServerHttp:
    """JSON requests and SSE streams to one server over a keep-alive pool (``connections`` kept)."""

    def __init__(
        self,
        label: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        connections: int = 1,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ):
        self.label, self.url, self.max_event_bytes = label, url.rstrip("/"), max_event_bytes
        self.connections_opened = 0
        # identity: no compressed (and so buffered) streams
        base = {"Accept-Encoding": "identity", **(headers or {})}
        self._headers = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in base.items()]
        self._urls: dict[str, httpcore.URL] = {}
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=None, max_keepalive_connections=connections, network_backend=_OneWriteBackend()
        )

    async def _trace(self, event: str, _info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.connections_opened += 1

    async def exchange(self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float) -> tuple[int, bytes]:
        """One request: (HTTP status, whole body), all within ``timeout_s``."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), timeout_s)
        except asyncio.TimeoutError:
            raise BackendError(
                f"{self.label} {self.url}{path}: no complete answer within {timeout_s:g} s; "
                "check the server or raise the time-out"
            ) from None
        except TRANSPORT_ERRORS as exc:
            raise self._lost(path, exc, None) from None

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        async with self._open(method, path, body) as response:
            return response.status, await self._read_body(response, path)

    async def stream(self, path: str, body: dict[str, Any], timeout_s: float, sink: EventSink) -> bool:
        """POST ``body`` and feed each SSE event to ``sink`` until it says the answer is complete
        (True) or the body ends (False). A non-200 answer raises Refused."""
        try:
            return await asyncio.wait_for(self._stream(path, body, sink), timeout_s)
        except asyncio.TimeoutError:
            raise BackendError(
                f"{self.label} {self.url}{path}: answer not complete within {timeout_s:g} s "
                f"(after {sink.progress()}); raise the request time-out or check the server"
            ) from None
        except EventTooLarge as exc:
            raise BackendError(f"{self.label} {self.url}{path}: {exc} (after {sink.progress()}); the stream is malformed") from None
        except TRANSPORT_ERRORS as exc:
            raise self._lost(path, exc, sink) from None

    async def _stream(self, path: str, body: dict[str, Any], sink: EventSink) -> bool:
        async with self._open("POST", path, body) as response:
            if response.status != 200:
                raw = await self._read_body(response, path)
                raise Refused(f"{self.label} {self.url} refused {path}: HTTP {response.status}", response.status, raw)
            return await self._feed(response, sink)

    async def _feed(self, response: httpcore.Response, sink: EventSink) -> bool:
        """Events to the sink until it is satisfied, then the rest of the body read and dropped:
        a connection closed with unread bytes cannot go back to the pool."""
        decoder, complete = SSEDecoder(self.max_event_bytes), False
        async for chunk in response.aiter_stream():
            if not complete:
                complete = any(sink.take(data) for data in decoder.feed(chunk))
            else:
                decoder.feed(chunk)  # still capped: a server must not send endless trailing bytes
        if not complete and (last := decoder.close()) is not None:
            complete = sink.take(last)
        return complete

    def _open(self, method: str, path: str, body: dict[str, Any] | None):
        url = self._urls.get(path) or self._urls.setdefault(path, httpcore.URL(self.url + path))
        if body is None:
            return self._pool.stream(method, url, headers=self._headers, extensions={"trace": self._trace})
        content = json.dumps(body).encode("utf-8")
        headers = [*self._headers, (b"Content-Type", b"application/json")]
        return self._pool.stream(method, url, headers=headers, content=content, extensions={"trace": self._trace})

    async def _read_body(self, response: httpcore.Response, path: str) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BackendError(f"{self.label} {self.url}{path}: answer larger than {MAX_BODY_BYTES} bytes; check the server")
        return bytes(body)

    def _lost(self, path: str, exc: Exception, sink: EventSink | None) -> ConnectionLost:
        if isinstance(exc, (httpcore.ConnectError, ConnectionRefusedError)):
            return ConnectionLost(f"cannot reach {self.label} {self.url}{path} ({exc!r}); start it or check the url")
        where = f"stream ended after {sink.progress()} without finishing" if sink else "answer cut off"
        return ConnectionLost(f"{self.label} {self.url}{path}: {where} ({exc!r}); the server may have crashed")

    async def aclose(self) -> None:
        await self._pool.aclose()


class _OneWriteBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _OneWriteStream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _OneWriteStream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _OneWriteStream(httpcore.AsyncNetworkStream):
    """Holds what is written until the first read, so a request's head and body leave in one write.

    httpcore writes them separately; on a busy machine the server woke on the head, parsed it and
    slept again before the body followed, which put milliseconds into TTFT here. An HTTP/1.1
    client reads only once its request is complete, so nothing waits on the held bytes."""

    def __init__(self, inner: httpcore.AsyncNetworkStream):
        self._inner, self._pending = inner, bytearray()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._pending += buffer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            await self._inner.write(data, timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _OneWriteStream(await self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def new_connection_details(opened: int) -> dict[str, Any]:
    """A record's note when a request had to open a connection, whose set-up then sits in its TTFT."""
    if not opened:
        return {}
    return {"connection_note": f"opened {opened} new connection(s) during the request (set-up included in its times)"}


class ServerHttp:
    """``AsyncServerHttp`` for synchronous callers: the same coroutines on a private event loop."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._loop = asyncio.new_event_loop()
        self.core = AsyncServerHttp(*args, **kwargs)

    @property
    def url(self) -> str:
        return self.core.url

    @property
    def connections_opened(self) -> int:
        return self.core.connections_opened

    def exchange(self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float) -> tuple[int, bytes]:
        return self._run(self.core.exchange(method, path, body, timeout_s))

    def stream(self, path: str, body: dict[str, Any], timeout_s: float, sink: EventSink) -> bool:
        return self._run(self.core.stream(path, body, timeout_s, sink))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.core.aclose())
        finally:
            self._loop.close()
