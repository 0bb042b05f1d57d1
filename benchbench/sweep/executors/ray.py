"""The Ray executor: each cell a Ray task reserving the cell's GPUs and CPUs, anywhere in the cluster.

The task runs the cell exactly as the local executor does (``run_cell``), into a scratch folder on
its node, and returns that run folder as bytes; the submitting machine unpacks it into
cells/<cell-id>/, so no shared filesystem is needed. Read against Ray 2.60.0: ``ray.init``
(address / RAY_ADDRESS / ``"local"``), ``ray.remote(...).options(num_gpus, num_cpus,
max_retries)``, ``ray.wait``, ``ray.cancel(force=True)`` (kills the task's worker process; the cell
process then gets SIGTERM from the kernel and stops its own workers), ``ray.nodes()``.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import cell_dir
from benchbench.sweep.run_cell import run_cell
from benchbench.sweep.spec import SweepError

CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "the ray executor needs Ray: pip install -e \".[ray]\" (on every node of the cluster too)"


def run_remote(cell_json: str) -> dict[str, Any]:
    """The Ray task: run one cell into a scratch folder on this node and return the folder as bytes."""
    started_at = time.time()
    cell = Cell.model_validate_json(cell_json)
    with tempfile.TemporaryDirectory(prefix="benchbench-cell-") as scratch:
        outcome = run_cell(cell, Path(scratch) / cell.id, scratch=Path(scratch))
        finished_at = time.time()
        archive = pack(Path(scratch) / cell.id)
    return {"outcome": outcome.model_copy(update={"node": socket.gethostname()}).model_dump(mode="json"),
            "archive": archive, "started_at": started_at, "pack_s": time.time() - finished_at, "sent_at": time.time()}


def pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(archive: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, cells: Sequence[Cell]):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cells = list(cells)

    def __enter__(self) -> RayExecutor:
        if self.address:
            check_reachable(self.address)
        try:
            import ray
        except ImportError:
            raise SweepError(INSTALL_HINT) from None
        self._ray = ray
        try:
            ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise SweepError(f"Ray at {where}: cannot connect ({str(exc).splitlines()[0]}); check --ray-address, and if "
                             "the cluster uses token authentication set RAY_AUTH_MODE=token with its token") from None
        try:
            self._check_fits()
        except SweepError:
            ray.shutdown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._ray.shutdown()

    def _check_fits(self) -> None:
        """Refuse, before anything runs, a cell that no node of the cluster could ever hold."""
        nodes = [node["Resources"] for node in self._ray.nodes() if node.get("Alive")]
        for cell in self.cells:
            if not any(n.get("GPU", 0) >= (cell.gpus or 0) and n.get("CPU", 0) >= cell.cpus for n in nodes):
                largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
                raise SweepError(f"sweep cell {cell.id} needs {cell.gpus} GPU(s) and {cell.cpus:g} CPU(s) on one node; the "
                                 f"Ray cluster's largest node has {largest.get('GPU', 0):g} GPU(s) and {largest.get('CPU', 0):g} "
                                 "CPU(s); add nodes or lower the cell's tp / resources")

    def run(self, cells: Sequence[Cell], sweep_dir: Path, on_start: Callable[[Cell], None],
            on_finish: Callable[[Cell, CellOutcome], None]) -> None:
        """Submit every cell, collect each as it finishes; Ctrl-C cancels (kills) the tasks still out."""
        ray = self._ray
        task = ray.remote(run_remote)
        pending: dict[Any, tuple[Cell, float]] = {}
        for cell in cells:
            options = {"num_gpus": cell.gpus or 0, "num_cpus": cell.cpus, "max_retries": 0, "name": f"benchbench-cell-{cell.id}"}
            pending[task.options(**options).remote(cell.model_dump_json())] = (cell, time.time())
            on_start(cell)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    cell, submitted_at = pending.pop(ref)
                    on_finish(cell, self._collect(ref, cell, sweep_dir, submitted_at))
        except KeyboardInterrupt:
            for ref, (cell, _) in pending.items():
                ray.cancel(ref, force=True)
                on_finish(cell, CellOutcome(status="interrupted", reason="sweep interrupted; its Ray task was cancelled"))
            raise

    def _collect(self, ref, cell: Cell, sweep_dir: Path, submitted_at: float) -> CellOutcome:
        """The finished task's outcome with its folder unpacked, or the reason Ray gives for its failure."""
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            reason = " ".join(str(exc).split())[:500]
            return CellOutcome(status="failed", reason=f"Ray task failed ({type(exc).__name__}): {reason}")
        received_at = time.time()
        unpack(result["archive"], cell_dir(sweep_dir, cell.id))
        costs = {"submit_to_start_s": result["started_at"] - submitted_at, "pack_s": result["pack_s"],
                 "transfer_s": received_at - result["sent_at"], "unpack_s": time.time() - received_at,
                 "archive_bytes": float(len(result["archive"]))}
        outcome = CellOutcome.model_validate(result["outcome"])
        return outcome.model_copy(update={"executor_s": {key: round(value, 4) for key, value in costs.items()}})


def check_reachable(address: str) -> None:
    """A concrete HOST:PORT must accept a connection within seconds (ray.init would wait much longer)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address}: write HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise SweepError(f"Ray address {address}: unreachable ({exc.strerror or exc}); start the cluster there "
                         "('ray start --head') or fix --ray-address / RAY_ADDRESS") from None
