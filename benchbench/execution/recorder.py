"""Turns measurements into records on disk with nothing between two timed requests but a hand-off.

The runner's thread only appends the raw measurement to a queue (no wake-up: on a busy machine
waking another thread there lets the OS preempt the runner for milliseconds). A thread of its
own looks every ``POLL_S``, builds each record, writes it (to the kernel: from then on no crash of
the process can lose it), fsyncs it (so it survives a crash of the machine too) and announces it
(``on_record``: the worker's event to its parent). ``finish`` wakes it and waits, so every
orderly end of a backend — done, an engine exception, a failed request — leaves every finished
record on disk; only a hard kill of the process within ``POLL_S`` of a request's end can lose
that one record.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from benchbench.execution.measure import Measurement
from benchbench.results.records import RecordSink, RequestRecord

OnRecord = Callable[[RequestRecord], None]
POLL_S = 0.005


class Recorder:
    def __init__(self, sink: RecordSink, on_record: OnRecord,
                 annotate: Callable[[RequestRecord], RequestRecord] = lambda record: record):
        """``annotate`` adds to each built record what only the worker knows (its GPU figures)."""
        self._sink, self._on_record, self._annotate = sink, on_record, annotate
        self._pending: collections.deque[Measurement] = collections.deque()  # appends are atomic
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="benchbench-recorder", daemon=True)
        self._thread.start()

    def record(self, measurement: Measurement) -> None:
        """Queue a measurement for the recorder's thread (safe from several threads at once)."""
        if self._error is not None:
            raise self._error
        self._pending.append(measurement)

    def close(self) -> None:
        """Wait until every queued measurement is written, synced and announced (idempotent)."""
        self._closing.set()
        self._thread.join()

    def finish(self) -> None:
        """``close``, then raise what went wrong on the recorder's thread, if anything did."""
        self.close()
        if self._error is not None:
            raise self._error

    def _write(self) -> None:
        while True:
            closing = self._closing.wait(POLL_S)
            batch = [self._pending.popleft() for _ in range(len(self._pending))]
            if batch and self._error is None:
                try:
                    self._save(batch)
                except BaseException as exc:  # raised in the runner's thread at its next record
                    self._error = exc
            if closing and not self._pending:
                return

    def _save(self, measurements: list[Measurement]) -> None:
        records = [self._annotate(measurement.record()) for measurement in measurements]
        for record in records:
            self._sink.append(record)
        self._sink.sync()  # one fsync for the batch
        for record in records:
            self._on_record(record)
