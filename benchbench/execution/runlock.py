"""One run at a time per run folder: an exclusive ``flock`` on ``RUN/.benchbench.lock``.

The run (or resume) takes it before writing anything and passes the same open file to each worker,
so the folder stays locked until the last process of the run has ended, however it ended: two runs,
or a resume racing a worker its killed parent left, can never both append records.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from benchbench.errors import BenchError

LOCK_FILE = ".benchbench.lock"
_held: dict[Path, int] = {}


def lock_run_dir(run_dir: Path, wait_s: float = 0.0) -> int:
    """Take the folder's lock (kept until this process exits) or refuse in one line; returns its descriptor.

    ``wait_s``: how long to wait for a holder that is ending (a killed run's worker stops itself).
    """
    key = Path(run_dir).resolve()
    if key in _held:
        return _held[key]
    try:
        fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise BenchError(f"run folder {run_dir}: cannot create its lock ({exc.strerror}); check the folder") from None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
        os.close(fd)
        raise BenchError(f"run folder {run_dir}: another benchbench run is using it (a run, a resume, or a worker "
                         "still ending); wait for it to finish, or choose another --output-dir") from None
    _held[key] = fd
    return fd


def held_lock(run_dir: Path) -> int | None:
    """The descriptor of this process's lock on the folder, for a worker to inherit; None if not held."""
    return _held.get(Path(run_dir).resolve())
