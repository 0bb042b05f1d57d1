"""The parent side of process isolation: each backend runs in a worker process of its own group.

A crash, an OOM kill or a CUDA error in one engine ends that worker only; GPU memory is released
when it exits. The parent watches the worker's event stream against the load, per-request and
per-backend time-outs, and on every exit path ends the worker's whole process group.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchbench.execution.launch import log_tail
from benchbench.execution.processes import GROUPS_FILE_ENV, registered_groups, stop_group
from benchbench.execution.runlock import held_lock
from benchbench.results.records import BackendOutcome, RequestRecord
from benchbench.config.scenario import BackendSpec

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Timeouts:
    load_s: float | None
    request_s: float | None
    backend_s: float | None


class WorkerTimeout(Exception):
    pass


def run_isolated(
    index: int, spec: BackendSpec, run_dir: Path, timeouts: Timeouts, on_record: Callable[[RequestRecord], None]
) -> BackendOutcome:
    """Run backend ``index`` of the run folder's scenario in a worker; always returns an outcome."""
    log_path = run_dir / "logs" / f"{spec.name}.log"
    log_path.parent.mkdir(exist_ok=True)
    groups_file = run_dir / "logs" / f"{spec.name}.server-groups"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
        GROUPS_FILE_ENV: str(groups_file),
    }
    lock = held_lock(run_dir)
    with log_path.open("ab") as log:
        # stdin is a pipe the parent never writes: when the parent dies, however, the worker reads EOF
        # and ends itself and its servers (worker.watch_parent); the lock travels with it
        process = subprocess.Popen(
            [sys.executable, "-m", "benchbench.execution.worker", str(run_dir), str(index)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True,
            pass_fds=() if lock is None else (lock,),
        )
    watch = _Watch(spec, timeouts, log_path)
    try:
        for event in _events(process, watch):
            if event["event"] == "record":
                record = RequestRecord.model_validate(event["record"])
                watch.last_request = record.request_id
                on_record(record)
            else:
                watch.outcome = BackendOutcome.model_validate(event["outcome"])
                watch.loaded = True
        return watch.final(process.wait())
    except WorkerTimeout as exc:
        watch.fail(str(exc))
        return watch.outcome
    finally:
        stop_group(process.pid, STOP_GRACE_S, process)
        process.wait()
        process.stdout.close()
        process.stdin.close()
        if process.returncode != 0:  # a worker that died could not stop the servers it launched
            for pgid in registered_groups(groups_file):
                stop_group(pgid, STOP_GRACE_S)


class _Watch:
    """What the parent knows of a worker so far, and the deadline it is held to."""

    def __init__(self, spec: BackendSpec, timeouts: Timeouts, log_path: Path):
        self.spec, self.timeouts, self.log_path = spec, timeouts, log_path
        self.outcome = BackendOutcome(name=spec.name, kind=spec.kind, options=spec.options, status="running")
        self.loaded, self.last_request = False, None
        self.started = self.last_event = time.monotonic()

    def deadline(self) -> tuple[float | None, str]:
        """The earliest time-out that applies now, and how to describe it."""
        candidates = []
        if self.timeouts.backend_s:
            candidates.append((self.started + self.timeouts.backend_s, f"backend time-out of {self.timeouts.backend_s:g} s"))
        step = self.timeouts.request_s if self.loaded else self.timeouts.load_s
        if step:
            what = "request time-out" if self.loaded else "load time-out"
            candidates.append((self.last_event + step, f"{what} of {step:g} s"))
        return min(candidates) if candidates else (None, "")

    def fail(self, reason: str) -> None:
        self.outcome.status, self.outcome.error = "failed", reason
        self.outcome.log_tail = self.outcome.log_tail or log_tail(self.log_path)

    def final(self, code: int) -> BackendOutcome:
        if self.outcome.status in {"ok", "failed"} and code == 0:
            return self.outcome
        after = f" after request {self.last_request}" if self.last_request else " before its first record"
        self.fail(f"worker {_describe_exit(code)}{after}; log: {self.log_path}")
        return self.outcome


def _events(process: subprocess.Popen, watch: _Watch):
    """Parsed JSON events from the worker's stdout until EOF, enforcing the watch's deadlines."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer = b""
    while True:
        deadline, what = watch.deadline()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not selector.select(wait):
            where = f" after request {watch.last_request}" if watch.last_request else ""
            raise WorkerTimeout(f"no progress within the {what}{where}; the engine hung or is too slow")
        chunk = os.read(process.stdout.fileno(), 1 << 16)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            watch.last_event = time.monotonic()
            yield json.loads(line)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
