"""Process groups benchbench starts (backend workers, engine servers), and ending them for sure.

Every child runs in a process group of its own (``start_new_session``), so signalling the group
reaches whatever the child spawned. ``stop_group`` is the one "SIGTERM, grace period, SIGKILL"
in the package. A worker notes the groups of servers it launches in a file its parent names
(``GROUPS_FILE_ENV``), so a worker killed with SIGKILL still leaves no server behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

GROUPS_FILE_ENV = "BENCHBENCH_SERVER_GROUPS_FILE"
KILL_WAIT_S = 5.0
POLL_S = 0.05
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in a process group."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] not in _GONE and os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue  # ended while we looked
    return members


def stop_group(pgid: int, grace_s: float, leader: subprocess.Popen | None = None) -> None:
    """SIGTERM a process group, SIGKILL what remains after ``grace_s``; reaps ``leader`` (our child)
    on the way, so it does not linger as a zombie that looks alive. Bounded even for processes
    stuck in the kernel."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while True:
            if leader:
                leader.poll()
            if not group_members(pgid) or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
    if leader:
        leader.poll()


def register_group(pgid: int) -> None:
    """Note a launched server's group in the file the supervising process named, if it named one."""
    path = os.environ.get(GROUPS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{pgid}\n")


def registered_groups(path: Path) -> list[int]:
    """The groups a worker noted (none if it noted nothing)."""
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def sweep_run_folder(run_dir: Path, grace_s: float = 2.0) -> list[int]:
    """End the process groups a killed run left behind in ``run_dir``: workers, their children and the
    servers they launched all carry ``GROUPS_FILE_ENV`` naming a file in its ``logs/``, which no other
    process has, so a reused pid is never mistaken for ours. Returns the groups ended."""
    logs = (Path(run_dir) / "logs").resolve()
    groups = set()
    for process in psutil.process_iter():
        try:
            value = process.environ().get(GROUPS_FILE_ENV)
            if value and Path(value).parent == logs and process.pid != os.getpid():
                groups.add(os.getpgid(process.pid))
        except (ProcessLookupError, psutil.Error):
            continue
    groups.discard(os.getpgrp())
    for pgid in groups:
        stop_group(pgid, grace_s)
    return sorted(groups)
