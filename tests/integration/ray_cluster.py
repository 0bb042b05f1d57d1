"""A real local Ray cluster for the sweep tests: ``ray start --head`` on 127.0.0.1 in a temporary
folder of its own, with two CPUs (two cells at once); stopping it ends its whole process group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchbench.execution.isolation import stop_group

RAY_CLI = "from ray.scripts.scripts import main; main()"
NO_MEMORY_MONITOR = {"RAY_memory_monitor_refresh_ms": "0"}
"""Ray's memory monitor kills workers when the whole machine passes 95% memory; on a machine shared with
other jobs that is their memory, not the test's (Ray's "Out-Of-Memory Prevention" page: 0 disables it)."""
NO_TOKEN_AUTH = {"RAY_AUTH_MODE": "disabled"}
"""Ray 2.60's ``ray start`` turns token authentication on when ~/.ray/auth_token exists (any earlier
``ray.init()`` writes one), while a driver given an explicit address does not: both sides say "disabled"."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalRayCluster:
    address: str
    temp_dir: Path
    pgid: int

    def stop(self) -> None:
        stop_group(self.pgid, grace_s=15.0)


def start_cluster(env: dict[str, str], num_cpus: int = 2, timeout_s: float = 300) -> LocalRayCluster:
    temp_dir = Path(tempfile.mkdtemp(prefix="bbray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    argv = [sys.executable, "-c", RAY_CLI, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--num-cpus", str(num_cpus), "--num-gpus", "0", "--temp-dir", str(temp_dir), "--include-dashboard", "false",
            "--disable-usage-stats"]
    starter = subprocess.Popen(argv, env={**env, **NO_MEMORY_MONITOR, **NO_TOKEN_AUTH}, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = starter.communicate(timeout=timeout_s)
    cluster = LocalRayCluster(f"127.0.0.1:{port}", temp_dir, starter.pid)
    if starter.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"ray start failed ({starter.returncode}): {output[-2000:]}")
    return cluster


def processes_matching(text: str) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of live processes whose command line contains ``text``."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, ppid = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if text in cmdline and state not in ("Z", "X"):
            found[int(entry.name)] = (int(ppid), cmdline)
    return found


def wait_for(condition, timeout_s: float, interval_s: float = 0.5):
    """Poll until ``condition()`` is truthy (returned) or the time is up (returns the last value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
