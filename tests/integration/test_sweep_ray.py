"""The tiny-model sweep on the Ray executor, against a real local Ray cluster started here (two CPUs,
so two cells at once): the same cell results as the local executor, a cell whose Ray worker is
killed mid-run reported failed while the others finish, --resume completing it, and Ctrl-C
cancelling the tasks out with no process left behind. Skipped without Ray (pip install -e ".[ray]")."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ray_cluster import processes_matching, start_cluster, wait_for
from sweep_helpers import CELL_IDS, ROOT, SCENARIO, cell_results, cli_env, outcomes, sweep_cli, write_sweep

pytest.importorskip("ray", reason='the Ray executor needs Ray: pip install -e ".[ray]"')
pytestmark = pytest.mark.slow

VICTIM = CELL_IDS[1]
BACKEND_WORKER = "benchbench.execution.worker"


@pytest.fixture(scope="module")
def cluster(benchbench_cache):
    cluster = start_cluster(cli_env())
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def start_sweep(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchbench", "sweep", *args], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def backend_workers_of(cell_id: str) -> dict[int, tuple[int, str]]:
    """The backend worker processes running ``cell_id`` (in the cell's scratch folder on the Ray node)."""
    return {pid: info for pid, info in processes_matching(BACKEND_WORKER).items() if f"/{cell_id} " in info[1] + " "}


@dataclass
class KilledSweep:
    sweep_dir: Path
    first: subprocess.CompletedProcess
    first_outcomes: dict
    killed: dict[str, int]
    left_after_kill: dict
    resumed: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def killed_sweep(cluster, tmp_path_factory) -> KilledSweep:
    """The sweep on Ray with the victim cell's Ray worker SIGKILLed once its backend worker runs, then resumed."""
    folder = tmp_path_factory.mktemp("sweep-ray")
    sweep_dir = folder / "out"
    process = start_sweep(str(write_sweep(folder, "executor: ray\n")), "--ray-address", cluster.address,
                          "--output-dir", str(sweep_dir))
    workers = wait_for(lambda: backend_workers_of(VICTIM), timeout_s=600)
    assert workers, "the victim cell never started its backend worker"
    backend_pid, (cell_pid, _) = next(iter(workers.items()))
    ray_worker_pid = processes_matching("")[cell_pid][0]
    killed = {"ray_worker": ray_worker_pid, "cell": cell_pid, "backend": backend_pid}
    scratch = Path(processes_matching("")[cell_pid][1].split()[-1]).parent
    os.kill(ray_worker_pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=900)
    first = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    left = wait_for(lambda: not any(pid in processes_matching("") for pid in (cell_pid, backend_pid)) and not scratch.exists(),
                    timeout_s=60)
    left_after_kill = {"processes": {pid: processes_matching("").get(pid) for pid in (cell_pid, backend_pid)},
                       "scratch_exists": scratch.exists(), "clean": left}
    first_outcomes = outcomes(sweep_dir)
    resumed = sweep_cli("sweep", "--resume", str(sweep_dir), "--ray-address", cluster.address)
    return KilledSweep(sweep_dir, first, first_outcomes, killed, left_after_kill, resumed)


def test_ray_cell_killed_mid_run_is_reported_failed_with_the_reason(killed_sweep):
    victim = killed_sweep.first_outcomes[VICTIM]
    assert killed_sweep.first.returncode == 1, killed_sweep.first.stderr[-2000:]
    assert victim["status"] == "failed"
    assert "WorkerCrashedError" in victim["reason"] and "worker died unexpectedly" in victim["reason"]
    assert f"FAILED cell {VICTIM}: Ray task failed (WorkerCrashedError)" in killed_sweep.first.stderr


def test_the_other_cells_finish_when_one_is_killed(killed_sweep):
    others = {cell: o["status"] for cell, o in killed_sweep.first_outcomes.items() if cell != VICTIM}
    assert others == {cell: "ok" for cell in CELL_IDS if cell != VICTIM}, killed_sweep.first_outcomes


def test_killed_cell_leaves_no_process_or_scratch_folder_behind(killed_sweep):
    assert killed_sweep.left_after_kill["clean"], killed_sweep.left_after_kill


def test_resume_runs_only_the_unfinished_cell_and_completes_the_sweep(killed_sweep):
    resumed = killed_sweep.resumed
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.splitlines()[0] == f"resuming 1 of 4 cell(s): {VICTIM}"
    final = outcomes(killed_sweep.sweep_dir)
    assert {cell: o["status"] for cell, o in final.items()} == {cell: "ok" for cell in CELL_IDS}
    assert final[VICTIM]["attempts"] == 2 and final[CELL_IDS[0]]["attempts"] == 1


def test_ray_and_local_executors_give_identical_cell_results_apart_from_timings(killed_sweep, local_sweep):
    local_dir, _ = local_sweep
    for cell_id in CELL_IDS:
        assert cell_results(killed_sweep.sweep_dir, cell_id) == cell_results(local_dir, cell_id), cell_id


def test_ray_cells_are_shipped_back_with_the_executors_own_cost(killed_sweep):
    for cell_id, outcome in outcomes(killed_sweep.sweep_dir).items():
        assert (killed_sweep.sweep_dir / "cells" / cell_id / "manifest.json").is_file()
        assert set(outcome["executor_s"]) == {"submit_to_start_s", "pack_s", "transfer_s", "unpack_s", "archive_bytes"}
        assert outcome["node"] and outcome["node"] != "local"
    assert "submit to start" in (killed_sweep.sweep_dir / "report.md").read_text()


SLOW_SWEEP = """\
scenario: base.yaml
executor: ray
set: {transformers.sleep_per_token_s: 1.0}
axes:
  max_new_tokens: [25, 26]
"""
SLOW_CELL = re.compile(r"/[12]-max_new_tokens=2[56] ")


def slow_cells(processes: dict[int, tuple[int, str]]) -> dict[int, tuple[int, str]]:
    return {pid: info for pid, info in processes.items() if SLOW_CELL.search(info[1] + " ")}


def test_ctrl_c_cancels_the_ray_tasks_and_leaves_no_process_behind(cluster, tmp_path):
    (tmp_path / "base.yaml").write_text(SCENARIO)
    (tmp_path / "sweep.yaml").write_text(SLOW_SWEEP)
    process = start_sweep(str(tmp_path / "sweep.yaml"), "--ray-address", cluster.address, "--output-dir", str(tmp_path / "out"))
    try:
        both = wait_for(lambda: len(slow_cells(processes_matching(BACKEND_WORKER))) == 2, timeout_s=600)
        assert both, "the two cells never ran at once"
        backends = slow_cells(processes_matching(BACKEND_WORKER))
        cells = slow_cells(processes_matching("benchbench.sweep.cell_worker"))
        ours = set(backends) | set(cells) | {ppid for ppid, _ in cells.values()}  # with the cells' Ray workers
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted: finished cells are kept; continue with --resume" in stderr
    assert {o["status"] for o in outcomes(tmp_path / "out").values()} == {"interrupted"}
    gone = wait_for(lambda: not set(processes_matching("")) & ours, timeout_s=60)
    assert gone, {pid: processes_matching("").get(pid) for pid in ours}
