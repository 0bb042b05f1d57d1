"""Turns measurements into records on disk with as little as possible between two timed requests.

The caller's thread builds the record and hands its line to the kernel (``write``, ~0.03 ms):
from then on no crash of this process — an engine segfault, an OOM kill — can lose it. The slow
rest runs on a thread of its own: ``fsync`` (milliseconds; it makes the record survive a crash
of the machine too, soon after) and ``on_record`` (the worker's event to its parent, progress).
``finish`` waits for that thread, so nothing is left unsaid when a backend ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from benchbench.execution.measure import Measurement
from benchbench.results.records import RecordSink, RequestRecord

OnRecord = Callable[[RequestRecord], None]
_DONE = None


class Recorder:
    def __init__(self, sink: RecordSink, on_record: OnRecord):
        self._sink, self._on_record = sink, on_record
        self._lock = threading.Lock()  # concurrent schedules record from several threads
        self._queue: queue.SimpleQueue[RequestRecord | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._announce, name="benchbench-recorder", daemon=True)
        self._thread.start()

    def record(self, measurement: Measurement) -> None:
        """Build and write the record now; sync and announce it on the recorder's thread."""
        if self._error is not None:
            raise self._error
        record = measurement.record()
        with self._lock:
            self._sink.append(record)
        self._queue.put(record)

    def close(self) -> None:
        """Wait until every written record is synced and announced (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()

    def finish(self) -> None:
        """``close``, then raise what went wrong on the recorder's thread, if anything did."""
        self.close()
        if self._error is not None:
            raise self._error

    def _announce(self) -> None:
        done = False
        while not done:
            batch = [self._queue.get()]
            while not self._queue.empty():  # one fsync covers everything written meanwhile
                batch.append(self._queue.get())
            done = any(item is _DONE for item in batch)
            records = [record for record in batch if record is not _DONE]
            if records and self._error is None:
                try:
                    self._sink.sync()
                    for record in records:
                        self._on_record(record)
                except BaseException as exc:  # raised in the runner's thread at its next record
                    self._error = exc
