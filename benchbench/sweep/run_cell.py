"""Run one cell as today's isolated run, in a process (and session) of its own, into its folder.

The cell process (``cell_worker.py``) runs the cell's scenario through its backends, each in its
own worker as any run does. Whatever happens, this returns an outcome: the run folder's manifest
says which backends finished; a time-out or a process that died says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.execution.isolation import PACKAGE_PARENT, STOP_GRACE_S
from benchbench.execution.launch import log_tail
from benchbench.execution.processes import stop_group
from benchbench.results.records import MANIFEST_FILE, read_manifest
from benchbench.sweep.cells import Cell, CellOutcome

CELL_FILE = "cell.json"
CELL_LOG = Path("logs") / "cell.log"
PARENT_ENV = "BENCHBENCH_SWEEP_PARENT"
SCRATCH_ENV = "BENCHBENCH_SWEEP_SCRATCH"


def run_cell(cell: Cell, cell_dir: Path, scratch: Path | None = None) -> CellOutcome:
    """Run the cell into ``cell_dir`` (created here); on Ctrl-C its processes are stopped first.

    ``scratch``: a folder the cell process removes if its parent dies (a Ray worker's temporary folder).
    """
    (cell_dir / CELL_LOG).parent.mkdir(parents=True, exist_ok=True)
    (cell_dir / CELL_FILE).write_text(cell.model_dump_json(indent=1) + "\n", encoding="utf-8")
    env = {**os.environ, PARENT_ENV: str(os.getpid()),
           "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
           **({SCRATCH_ENV: str(scratch)} if scratch else {})}
    started = time.monotonic()
    with (cell_dir / CELL_LOG).open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchbench.sweep.cell_worker", str(cell_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        code = process.wait(timeout=cell.timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(process.pid, STOP_GRACE_S, process)
        return _outcome("timed_out", f"cell time-out of {cell.timeout_s:g} s; log: {cell_dir / CELL_LOG}", started)
    finally:
        if process.returncode is None:  # interrupted: stop the cell (it marks its run interrupted) before going on
            stop_group(process.pid, STOP_GRACE_S, process)
    return outcome_of(cell_dir, code, started)


def outcome_of(cell_dir: Path, code: int, started: float) -> CellOutcome:
    """ok when the cell process exited cleanly and every backend in its manifest finished."""
    if not (cell_dir / MANIFEST_FILE).is_file():
        tail = log_tail(cell_dir / CELL_LOG)
        last = f" ({tail[-1].strip()})" if tail else ""
        return _outcome("failed", f"cell process exited with code {code} before its run started{last}", started)
    try:
        manifest = read_manifest(cell_dir)
    except BenchError as exc:
        return _outcome("failed", str(exc), started)
    unfinished = [b for b in manifest.backends if b.status != "ok"]
    if code == 0 and not unfinished:
        return _outcome("ok", None, started)
    reasons = [f"backend {b.name} {b.status}: {b.error}" for b in unfinished] or [f"cell process exited with code {code}"]
    status = "interrupted" if unfinished and all(b.status == "interrupted" for b in unfinished) else "failed"
    return _outcome(status, "; ".join(reasons), started)


def _outcome(status: str, reason: str | None, started: float) -> CellOutcome:
    return CellOutcome(status=status, reason=reason, seconds=round(time.monotonic() - started, 3))
