"""What the server backends (OpenAI-compatible, LightLLM) share under load: streamed requests go
through the load client (execution/loadclient.py), which sends each prepared request's rendered
bytes to the backend's server on connections of its own and hands back the events it received;
the backend reads them with the same stream sink as a live request, so both paths count tokens alike.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchbench.backends.base import Backend, Concurrency, Generation
from benchbench.backends.http_client import EventSink, ServerHttp
from benchbench.backends.http_wire import Origin


class ServerClient(Protocol):
    """A server backend's pooled client, as far as the load client needs it."""

    http: ServerHttp
    timeout_s: float


class StreamSink(EventSink, Protocol):
    """A backend's stream sink: takes events, says whether they made a whole answer, and gives it."""

    @property
    def complete(self) -> bool:
        """A finish came: the events taken so far are a whole answer."""

    def result(self) -> Any:
        """The answer the events made."""


class ServerBackend(Backend):
    """A backend that sends requests rendered in ``prepare`` to a server; implements ServedOverHttp."""

    client: ServerClient | None = None

    @property
    def concurrency(self) -> Concurrency:
        # streamed requests under load go through the asyncio load client; the server schedules them
        return Concurrency("server", None) if self.capabilities.streams_tokens else Concurrency("none", 1)

    def load_origin(self) -> Origin:
        return self.client.http.origin

    def load_deadline_s(self) -> float:
        return self.client.timeout_s

    def generation_from_events(self, prepared: Any, events: Sequence[tuple[int, str]]) -> tuple[Generation, list[tuple[int, int]]]:
        timer = _ReplayTimer()
        sink = self._stream_sink(timer.tokens)
        for arrived_ns, data in events:
            timer.at_ns = arrived_ns
            if sink.take(data):
                break
        if not sink.complete:
            raise ValueError(f"stream ended after {sink.progress()} without finishing")
        return self._generation(sink.result(), prepared, {}), timer.marks

    @abstractmethod
    def _stream_sink(self, on_tokens: Callable[[int], None]) -> StreamSink:
        """The sink a live stream of this backend goes through, calling ``on_tokens(n)``."""

    @abstractmethod
    def _generation(self, result: Any, prepared: Any, connection_details: dict[str, Any]) -> Generation:
        """The Generation of one answer (``connection_details``: connections it had to open)."""


@dataclass
class _ReplayTimer:
    """Stamps tokens with the arrival time of the event being replayed."""

    at_ns: int = 0
    marks: list[tuple[int, int]] = field(default_factory=list)

    def tokens(self, count: int = 1) -> None:
        self.marks.append((self.at_ns, count))
