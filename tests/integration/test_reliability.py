"""Faults during a run never cost a finished record: a killed worker, SIGTERM, a hung engine.

Each test runs the real CLI in a subprocess on the tiny model, slowed by the Transformers
backend's test-only ``sleep_per_token_s`` so there is time to strike mid-run.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchbench.execution.processes import GROUPS_FILE_ENV, group_members
from benchbench.results.records import read_manifest, read_records, write_manifest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SLOW_SCENARIO = """\
name: slow-ten
images: {synthetic: {sizes: [[448, 448], [896, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe."}]}
requests: 10
warmup: 1
max_new_tokens: 8
backends:
  - {kind: transformers, options: {sleep_per_token_s: %s}}
"""


def start_run(tmp_path: Path, *extra: str, sleep_s: float = 0.04) -> tuple[subprocess.Popen, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(SLOW_SCENARIO % sleep_s)
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "--scenario", str(scenario), "--output-dir", str(run_dir),
         "--no-progress", *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return process, run_dir


def wait_for_measured(run_dir: Path, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        results = run_dir / "results.jsonl"
        if results.exists() and results.read_text().count('"phase":"measure"') >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} measured records after {timeout_s} s")


def worker_pid(parent_pid: int) -> int:
    """The benchbench worker started by the CLI process (its direct child)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent_pid and b"benchbench.execution.worker" in cmdline:
                return int(entry.name)
    raise AssertionError("no worker process found")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def assert_valid_measured(run_dir: Path) -> list:
    measured = [r for r in read_records(run_dir) if r.phase == "measure"]
    assert all(r.fairness.ok and r.output_tokens == 8 for r in measured)
    return measured


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "--resume", str(run_dir), "--no-progress"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )


def test_sigkill_of_the_worker_keeps_records_fails_clearly_and_resume_completes(tmp_path):
    process, run_dir = start_run(tmp_path)
    wait_for_measured(run_dir, 3)
    worker = worker_pid(process.pid)
    os.kill(worker, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "killed by SIGKILL" in stderr and "Traceback" not in stderr
    before = assert_valid_measured(run_dir)
    assert 3 <= len(before) < 10
    assert not alive(worker) and not group_members(worker)
    outcome = read_manifest(run_dir).backends[0]
    assert outcome.status == "failed" and "SIGKILL" in outcome.error

    finished = resume(run_dir)
    assert finished.returncode == 0, finished.stderr
    after = assert_valid_measured(run_dir)
    assert sorted(r.request_id for r in after) == [f"r{i:03d}" for i in range(10)]
    assert [r.model_dump() for r in after[: len(before)]] == [r.model_dump() for r in before]
    assert read_manifest(run_dir).backends[0].status == "ok"


def test_sigterm_of_the_run_marks_interrupted_keeps_records_and_leaves_no_process(tmp_path):
    process, run_dir = start_run(tmp_path)
    wait_for_measured(run_dir, 2)
    worker = worker_pid(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "--resume" in stderr and "Traceback" not in stderr
    assert len(assert_valid_measured(run_dir)) >= 2
    assert read_manifest(run_dir).backends[0].status == "interrupted"
    assert not alive(worker) and not group_members(worker)
    assert (run_dir / "report.html").is_file()
    assert resume(run_dir).returncode == 0
    assert len(assert_valid_measured(run_dir)) == 10


def test_a_hung_request_hits_the_request_timeout_and_keeps_earlier_records(tmp_path):
    process, run_dir = start_run(tmp_path, "--request-timeout", "3", sleep_s=0.02)
    wait_for_measured(run_dir, 2)
    worker = worker_pid(process.pid)
    os.kill(worker, signal.SIGSTOP)  # the engine stops answering, as a deadlocked GPU would
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "request time-out of 3 s" in stderr
    assert len(assert_valid_measured(run_dir)) >= 2
    assert not alive(worker)


def test_resume_refuses_a_finished_run(tmp_path):
    process, run_dir = start_run(tmp_path, sleep_s=0.0)
    process.communicate(timeout=120)
    assert process.returncode == 0
    again = resume(run_dir)
    assert again.returncode == 2 and "nothing to resume" in again.stderr


def test_resume_sets_a_torn_last_record_aside_tells_the_user_and_loses_nothing(tmp_path):
    """A crash (or a full disk) mid-write leaves half a record; resume must not glue the next one to it."""
    process, run_dir = start_run(tmp_path, sleep_s=0.0)
    process.communicate(timeout=300)
    assert process.returncode == 0
    results = run_dir / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    kept, torn = lines[:6], lines[6][: len(lines[6]) // 2]  # the warmup, five measured, half of the sixth
    results.write_bytes(b"".join(kept) + torn)
    manifest = read_manifest(run_dir)
    manifest.backends[0].status = "interrupted"
    write_manifest(run_dir, manifest)
    before = assert_valid_measured(run_dir)

    finished = resume(run_dir)
    assert finished.returncode == 0, finished.stderr
    assert "note:" in finished.stderr and "moved them to results.jsonl.damaged-" in finished.stderr
    aside = list(run_dir.glob("results.jsonl.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == torn
    after = assert_valid_measured(run_dir)
    assert sorted(r.request_id for r in after) == [f"r{i:03d}" for i in range(10)]
    assert [r.model_dump() for r in after[: len(before)]] == [r.model_dump() for r in before]


def fill(disk: Path) -> Path:
    """Write a file until the disk is full (ENOSPC); returns it so the test can free the space."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_stops_the_run_in_one_line_keeps_records_and_resume_completes(tmp_path, small_tmpfs):
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(SLOW_SCENARIO % 0.04)
    run_dir = small_tmpfs / "run"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "--scenario", str(scenario), "--output-dir", str(run_dir),
         "--no-progress"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for_measured(run_dir, 2)
    filler = fill(small_tmpfs)
    _, stderr = process.communicate(timeout=300)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert process.returncode == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert str(run_dir) in errors[0] and "No space left on device" in errors[0] and "--resume" in errors[0]
    assert not list(run_dir.glob("*.tmp"))
    before = assert_valid_measured(run_dir)
    assert 2 <= len(before) < 10

    filler.unlink()
    finished = resume(run_dir)
    assert finished.returncode == 0, finished.stderr
    after = assert_valid_measured(run_dir)
    assert sorted(r.request_id for r in after) == [f"r{i:03d}" for i in range(10)]
    assert [r.model_dump() for r in after[: len(before)]] == [r.model_dump() for r in before]


def run_processes(run_dir: Path) -> list[int]:
    """Live processes started for this run folder (workers, their children, servers): they carry its groups file."""
    found = []
    for process in psutil.process_iter():
        try:
            value = process.environ().get(GROUPS_FILE_ENV, "")
            if value.startswith(str(run_dir / "logs")) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def test_sigkill_of_the_parent_ends_the_worker_and_an_immediate_resume_doubles_nothing(tmp_path):
    process, run_dir = start_run(tmp_path)
    wait_for_measured(run_dir, 2)
    worker = worker_pid(process.pid)
    process.kill()
    process.communicate(timeout=60)
    finished = resume(run_dir)  # at once: the orphan must end itself (or be swept), never write beside it
    assert finished.returncode == 0, finished.stderr
    assert not alive(worker) and not group_members(worker) and run_processes(run_dir) == []
    measured = assert_valid_measured(run_dir)
    assert sorted(r.request_id for r in measured) == [f"r{i:03d}" for i in range(10)]  # each once


def test_a_process_left_by_a_killed_run_is_swept_before_resume_runs(tmp_path):
    """A stand-in for a launched server whose worker died before it could stop it: own session, the run's env."""
    process, run_dir = start_run(tmp_path, sleep_s=0.0)
    process.communicate(timeout=300)
    manifest = read_manifest(run_dir)
    manifest.backends[0].status = "interrupted"
    write_manifest(run_dir, manifest)
    env = {**os.environ, GROUPS_FILE_ENV: str(run_dir / "logs" / "transformers.server-groups")}
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env, start_new_session=True)
    try:
        assert resume(run_dir).returncode == 0
        assert stand_in.wait(timeout=30) is not None
    finally:
        stand_in.kill()


def test_four_runs_on_one_output_dir_at_once_only_one_writes(tmp_path):
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(SLOW_SCENARIO % 0.0)
    run_dir = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "run_bench.py"), "--scenario", str(scenario), "--output-dir", str(run_dir), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = [(run.wait(timeout=600), run.communicate()[1]) for run in runs]
    assert sorted(code for code, _ in outcomes) == [0, 2, 2, 2], outcomes
    for code, stderr in outcomes:
        if code == 2:
            assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1, stderr
            assert "Traceback" not in stderr
    assert len(assert_valid_measured(run_dir)) == 10


def test_sigterm_then_ctrl_c_while_the_report_is_written_exits_130_and_report_completes_it(tmp_path):
    process, run_dir = start_run(tmp_path, sleep_s=0.0)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if read_manifest(run_dir).report_status == "pending":
                break
        except Exception:  # the manifest may be mid-replace; look again
            pass
        time.sleep(0.01)
    else:
        pytest.fail("the run never started its report")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert read_manifest(run_dir).report_status == "pending" and f"benchbench report {run_dir}" in stderr
    rebuilt = subprocess.run([sys.executable, "-m", "benchbench", "report", str(run_dir)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert read_manifest(run_dir).report_status == "written" and (run_dir / "report.html").is_file()


def summary_req_s(run_dir: Path) -> float:
    import csv

    with (run_dir / "summary.csv").open() as handle:
        return float(next(csv.DictReader(handle))["req_s"])


def test_throughput_of_an_interrupted_and_resumed_run_leaves_out_the_interruption(tmp_path):
    """The gap, the restart and the new warmup are in no session's span: req/s stays near an uninterrupted run's."""
    whole, whole_dir = start_run(tmp_path / "whole")
    whole.communicate(timeout=300)
    assert whole.returncode == 0
    cut, cut_dir = start_run(tmp_path / "cut")
    wait_for_measured(cut_dir, 4)
    cut.send_signal(signal.SIGTERM)
    cut.communicate(timeout=120)
    time.sleep(5)  # the interruption: far longer than the whole run's measured span
    assert resume(cut_dir).returncode == 0
    measured = assert_valid_measured(cut_dir)
    assert len(measured) == 10 and {r.session for r in measured} == {0, 1}
    assert summary_req_s(cut_dir) > 0.6 * summary_req_s(whole_dir)
