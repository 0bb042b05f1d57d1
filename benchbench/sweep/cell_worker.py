"""The cell process: ``python -m benchbench.sweep.cell_worker CELL_DIR`` runs the cell described in
CELL_DIR/cell.json as an ordinary run into CELL_DIR and exits with the run's exit code.

It dies with its parent: a Ray worker killed mid-cell (or a killed sweep) sends it SIGTERM, which
a run treats like Ctrl-C, so it marks itself interrupted and stops its backend workers.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from benchbench.sweep.cells import Cell
from benchbench.sweep.run_cell import CELL_FILE, PARENT_ENV, SCRATCH_ENV

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies (and take SIGTERM as Ctrl-C); if it already has, act now."""
    signal.signal(signal.SIGTERM, _interrupt)
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if _orphaned():
        os.kill(os.getpid(), signal.SIGTERM)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _orphaned() -> bool:
    return bool(os.environ.get(PARENT_ENV)) and os.getppid() != int(os.environ[PARENT_ENV])


def run_args(cell: Cell, scenario_path: Path, cell_dir: Path) -> list[str]:
    """The ``benchbench run`` arguments of a cell."""
    args = ["run", "--scenario", str(scenario_path), "--output-dir", str(cell_dir), "--no-progress"]
    args += ["--model", cell.model] if cell.model else []
    args += ["--device", cell.device] if cell.device else []
    return args + (["--trust-remote-code"] if cell.trust_remote_code else [])


def main(cell_dir: Path) -> None:
    die_with_parent()
    from benchbench.cli import main as cli

    cell = Cell.model_validate_json((cell_dir / CELL_FILE).read_text(encoding="utf-8"))
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"cell-{cell.id}-") as scenario_file:
            yaml.safe_dump(cell.scenario, scenario_file, sort_keys=False)
            scenario_file.flush()
            cli(run_args(cell, Path(scenario_file.name), cell_dir), prog_name="benchbench")
    finally:
        if _orphaned() and os.environ.get(SCRATCH_ENV):  # nobody is left to ship or clean the folder
            shutil.rmtree(os.environ[SCRATCH_ENV], ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
