"""Server-sent events from a byte stream, in time linear in its length, with a cap on one event.

Engines stream answers as SSE (``data: {...}`` lines, a blank line ending each event). A reader
that re-joins or re-scans its buffer for every arriving chunk costs quadratic time on one large
event (a 5 MB delta took minutes); this decoder scans each byte once and refuses an event larger
than ``max_event_bytes`` as soon as it grows past it, so a hostile or broken server costs bounded
memory and time. Fields other than ``data`` (``event``, ``id``, ``retry``, comments) are skipped:
no engine benchbench drives sends anything in them that it needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

DEFAULT_MAX_EVENT_BYTES = 16 << 20
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class EventTooLarge(ValueError):
    """One event grew past the size cap."""


class SSEDecoder:
    """Feed it bytes as they arrive; it returns each complete event's data (lines joined by "\\n")."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no line break
        self._data: list[bytes] = []
        self._event_bytes = 0
        self._skip_lf = False  # the last line ended in "\r": a "\n" first in the next chunk belongs to it

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event that this chunk completes."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        events = [event for line in self._complete_lines() if (event := self._take_line(line)) is not None]
        pending = self._event_bytes + len(self._buffer)
        if pending > self.max_event_bytes:
            raise EventTooLarge(f"an event passed {self.max_event_bytes} bytes without ending")
        return events

    def _complete_lines(self) -> Iterator[bytes]:
        buffer, start = self._buffer, 0
        if buffer.find(b"\r", self._scanned) < 0:  # engines end lines with "\n": search at C speed
            position = buffer.find(b"\n", self._scanned)
            while position >= 0:
                yield bytes(buffer[start:position])
                start = position + 1
                position = buffer.find(b"\n", start)
        else:
            for match in _LINE_BREAK.finditer(buffer, self._scanned):
                yield bytes(buffer[start : match.start()])
                start = match.end()
                self._skip_lf = start == len(buffer) and match.group() == b"\r"
        del buffer[:start]
        self._scanned = len(buffer)

    def _take_line(self, line: bytes) -> str | None:
        if not line:
            return self._dispatch()
        field, _, value = line.partition(b":")
        if field == b"data":
            value = value[1:] if value[:1] == b" " else value
            self._data.append(value)
            self._event_bytes += len(value) + 1
        return None

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data = b"\n".join(self._data).decode("utf-8")
        self._data, self._event_bytes = [], 0
        return data

    def close(self) -> str | None:
        """At the end of the body: the data of a last event whose lines ended but whose blank line
        never came (some servers close right after the last ``data:`` line)."""
        return self._dispatch()
