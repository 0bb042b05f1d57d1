"""Start an inference server as a child process group, wait until it is healthy, stop it for sure.

Generic on purpose: a server is an argv list, extra environment and a health URL, so any backend
that drives an HTTP engine (LightLLM, ``lmdeploy serve``, ``transformers serve``) can reuse it.
No shell is involved, the server gets its own process group (``start_new_session``), and
``stop`` ends that whole group (``processes.stop_group``), so the server's own workers go with it.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from benchbench.errors import BackendError
from benchbench.execution.processes import register_group, stop_group

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ServerSpec:
    """What to run and how to tell that it is ready."""

    name: str
    argv: tuple[str, ...]
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    startup_timeout_s: float = 600.0
    health_probe_timeout_s: float = 30.0
    stop_grace_s: float = 15.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_port_free(host: str, port: int, owner: str) -> None:
    """Raise a BackendError naming the port when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores sockets lingering in TIME_WAIT but still fails on a live listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BackendError(
                    f"{owner}: port {port} on {host} is already in use; stop what listens there or choose another port"
                ) from None
            raise BackendError(f"{owner}: cannot bind {host}:{port} ({exc.strerror}); choose another host or port") from None


class ServerError(BackendError):
    """A launched server failed; ``log_tail`` holds the last lines of its log for the report."""

    def __init__(self, message: str, log_tail: list[str]):
        super().__init__(message)
        self.log_tail = log_tail


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-blank lines of a log file (none if it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def probe_health(host: str, port: int, path: str, timeout_s: float) -> int | None:
    """HTTP status of GET path, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class LaunchedServer:
    """A running server process group; use as a context manager or call ``stop``."""

    def __init__(self, spec: ServerSpec, process: subprocess.Popen):
        self.spec = spec
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return self.spec.url

    def exited(self, within_s: float = 0.0) -> int | None:
        """The leader's exit code, or None while it runs (waiting up to ``within_s`` for it to end)."""
        try:
            return self.process.wait(timeout=within_s) if within_s > 0 else self.process.poll()
        except subprocess.TimeoutExpired:
            return None

    def failure(self, what: str) -> ServerError:
        """A one-line error for ``what`` naming the log and quoting its last line; the tail rides along."""
        tail = log_tail(self.spec.log_path)
        last = f"; last log line: {tail[-1].strip()[:300]}" if tail else ""
        return ServerError(f"{self.spec.name} server {self.url}: {what} (log: {self.spec.log_path}{last})", tail)

    def wait_healthy(self) -> None:
        """Poll the health URL until it answers 200; raise if the process exits or time runs out."""
        spec = self.spec
        deadline = time.monotonic() + spec.startup_timeout_s
        while True:
            code = self.exited()
            if code is not None:
                raise self.failure(f"exited with code {code} before it became healthy; read the log")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.failure(
                    f"not healthy at {spec.health_path} within {spec.startup_timeout_s:g} s; "
                    "raise the start-up timeout or read the log"
                )
            if probe_health(spec.host, spec.port, spec.health_path, min(spec.health_probe_timeout_s, remaining)) == 200:
                return
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def stop(self) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after the grace period."""
        stop_group(self.pid, self.spec.stop_grace_s, self.process)

    def __enter__(self) -> LaunchedServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def launch(spec: ServerSpec) -> LaunchedServer:
    """Start the server and return once it is healthy; on any failure nothing is left running."""
    ensure_port_free(spec.host, spec.port, f"{spec.name} server")
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                list(spec.argv),
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendError(
                f"{spec.name} server: cannot run {spec.argv[0]!r} ({exc.strerror}); check the python/executable setting"
            ) from None
    register_group(process.pid)
    server = LaunchedServer(spec, process)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server
