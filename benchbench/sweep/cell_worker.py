"""The cell process: ``python -m benchbench.sweep.cell_worker CELL_DIR`` runs the cell described in
CELL_DIR/cell.json as an ordinary run (``benchbench.run``) into CELL_DIR.

It dies with its parent: a Ray worker killed mid-cell (or a killed sweep) sends it SIGTERM, which
a run treats like Ctrl-C, so it marks itself interrupted and stops its backend workers.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.sweep.cells import Cell
from benchbench.sweep.run_cell import CELL_FILE, CELL_LOG, PARENT_ENV, SCRATCH_ENV

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


def main(cell_dir: Path) -> int:
    """Run the cell through the library API; the exit code is 0 (every backend finished), 1, 2 (bad input) or 130."""
    die_with_parent()
    import benchbench
    from benchbench.config.scenario import parse_scenario

    cell = Cell.model_validate_json((cell_dir / CELL_FILE).read_text(encoding="utf-8"))
    options = benchbench.RunOptions(model=cell.model, device=cell.device, output_dir=cell_dir,
                                    output_dir_owned=(CELL_FILE, CELL_LOG.parts[0]),
                                    trust_remote_code=cell.trust_remote_code, command=["benchbench", "sweep", "cell", cell.id])
    try:
        return 0 if benchbench.run(parse_scenario(cell.scenario, f"of sweep cell {cell.id}"), options).ok else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if _orphaned() and os.environ.get(SCRATCH_ENV):  # nobody is left to ship or clean the folder
            shutil.rmtree(os.environ[SCRATCH_ENV], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
