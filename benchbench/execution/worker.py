"""The child side of process isolation: runs one backend of a run folder and reports on stdout.

``python -m benchbench.execution.worker RUN_DIR INDEX`` reads the workload the run folder saved (checking
its hash against the manifest's), skips measured requests already on disk, appends records to results.jsonl itself, and
writes one JSON event per line to the stdout it was given: ``loaded``, ``record``, ``outcome``.
Anything an engine prints goes to stderr (the backend's log), never into the event stream.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.execution.processes import GROUPS_FILE_ENV, registered_groups, stop_group
from benchbench.results.records import BackendOutcome, RecordSink, RequestRecord, read_manifest, read_records
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.config.scenario import parse_scenario
from benchbench.workload.store import load_workload

ORPHAN_GRACE_S = 2.0


def _event_stream():
    """Keep the real stdout for events; point fd 1 at stderr so engine prints cannot corrupt them."""
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return events


def watch_parent(groups_file: Path | None) -> None:
    """End this worker, its process group and the servers it launched as soon as the parent is gone.

    The parent holds the write end of our stdin and never writes: EOF means it died (even by SIGKILL),
    so nobody would read our events or stop our servers. A thread, so an engine busy in C still yields.
    """

    def watch() -> None:
        while os.read(sys.stdin.fileno(), 1):
            pass
        for pgid in registered_groups(groups_file) if groups_file else []:
            stop_group(pgid, ORPHAN_GRACE_S)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="benchbench-parent-watch", daemon=True).start()


def run_worker(run_dir: Path, index: int, events) -> None:
    def send(event: str, payload: BackendOutcome | RequestRecord) -> None:
        key = "record" if isinstance(payload, RequestRecord) else "outcome"
        events.write(json.dumps({"event": event, key: payload.model_dump(mode="json")}) + "\n")

    manifest = read_manifest(run_dir)
    scenario = parse_scenario(manifest.scenario, source=f"manifest of {run_dir}")
    spec = scenario.backends[index]
    try:
        workload = load_workload(run_dir, manifest.workload_hash)
        earlier = [r for r in read_records(run_dir) if r.backend == spec.name]
        session = max((r.session for r in earlier), default=-1) + 1  # a resume measures a new stretch
    except BenchError as exc:
        send("outcome", BackendOutcome(name=spec.name, kind=spec.kind, options=spec.options, status="failed", error=str(exc)))
        return
    settings = RunSettings(**{**manifest.settings, "run_dir": run_dir, "model_path": Path(manifest.settings["model_path"]),
                              "request_timeout_s": scenario.timeouts.request_s, "load_timeout_s": scenario.timeouts.load_s})
    sink = RecordSink(run_dir, session)
    try:
        outcome = run_backend(
            spec, workload, settings, sink,
            on_record=lambda record: send("record", record),
            on_loaded=lambda outcome: send("loaded", outcome),
            earlier=earlier,
        )
    finally:
        sink.close()
    send("outcome", outcome)


if __name__ == "__main__":
    watch_parent(Path(os.environ[GROUPS_FILE_ENV]) if os.environ.get(GROUPS_FILE_ENV) else None)
    run_worker(Path(sys.argv[1]), int(sys.argv[2]), _event_stream())
