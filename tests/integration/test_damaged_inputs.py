"""Damaged run folders, hostile paths and refused flags: one line and exit 2, never a traceback,
never a record lost or a user's file overwritten.

The run folder is one real tiny-model run; each test damages a copy of it. Commands run through
click's test runner in this process (the same code as the CLI, without a fresh interpreter each)
except where a real process matters (resume).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_runs import run_scenario

from benchbench.cli import main
from benchbench.errors import BenchError
from benchbench.execution import bench
from benchbench.execution.launch import free_port
from benchbench.results.records import read_records, repair_tail

pytestmark = pytest.mark.slow

TINY = """
name: damaged-inputs
images: {synthetic: {sizes: [[448, 448], [896, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe."}]}
requests: 3
warmup: 0
max_new_tokens: 4
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return run_scenario(tmp_path_factory.mktemp("finished"), TINY)


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def cli(*args: str):
    """The real CLI in this process: (exit code, stdout, stderr); a traceback fails the test here."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_exit_2(code: int, stderr: str, *expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, stderr
    assert all(text in lines[0] for text in expected), stderr


def read_only_copy(run_dir: Path, point: Path) -> Path:
    copy = point / "run"
    shutil.copytree(run_dir, copy)
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    return copy


DAMAGED_LINES = [b"5\n", b"null\n", b"[1,2]\n", b"\xff\xfe not utf-8\n", b'{"schema_version": 1, "backend": "tra']


@pytest.mark.parametrize("damage", DAMAGED_LINES, ids=["int", "null", "list", "non-utf8", "torn"])
def test_a_damaged_last_line_is_left_out_with_a_note_and_the_report_still_builds(run_copy, damage):
    with (run_copy / "results.jsonl").open("ab") as handle:
        handle.write(damage)
    code, stdout, stderr = cli("report", str(run_copy))
    assert code == 0 and "report:" in stdout
    assert "note:" in stderr and "damaged (a write cut short) and left out" in stderr
    assert len(read_records(run_copy)) == 3


@pytest.mark.parametrize("damage", DAMAGED_LINES[:4], ids=["int", "null", "list", "non-utf8"])
@pytest.mark.parametrize("command", ["report", "gate", "baseline"])
def test_damage_before_complete_records_is_one_line_and_exit_2_for_every_reader(run_copy, tmp_path, damage, command):
    baseline = tmp_path / "baseline.json"
    assert cli("baseline", "save", str(run_copy), "--to", str(baseline))[0] == 0
    results = run_copy / "results.jsonl"
    results.write_bytes(damage + results.read_bytes())
    argv = {"report": ["report", str(run_copy)], "gate": ["gate", "--baseline", str(baseline), str(run_copy)],
            "baseline": ["baseline", "save", str(run_copy), "--to", str(tmp_path / "other.json")]}[command]
    code, _, stderr = cli(*argv)
    assert_one_line_exit_2(code, stderr, f"{results}:1:", "remove line 1")


def _edit_manifest(run_dir: Path, edit) -> None:
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(edit(manifest)))


MANIFEST_DAMAGE = {
    "a-list": lambda m: [],
    "model-empty": lambda m: {**m, "model": {}},
    "gpus-a-string": lambda m: {**m, "environment": {**m["environment"], "gpus": "x"}},
    "settings-empty": lambda m: {**m, "settings": {}},
    "backends-wrong-type": lambda m: {**m, "backends": [5]},
}


@pytest.mark.parametrize("damage", MANIFEST_DAMAGE, ids=list(MANIFEST_DAMAGE))
def test_a_manifest_of_the_wrong_shape_is_one_line_and_exit_2(run_copy, damage):
    _edit_manifest(run_copy, MANIFEST_DAMAGE[damage])
    code, _, stderr = cli("report", str(run_copy))
    assert_one_line_exit_2(code, stderr, "manifest.json", "the file is damaged")


@pytest.mark.parametrize("kind", ["folder", "dev-zero", "binary"])
def test_a_manifest_that_is_not_a_text_file_is_one_line_and_exit_2(run_copy, kind):
    path = run_copy / "manifest.json"
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b"\x00\xff\xfe" * 100)
    code, _, stderr = cli("report", str(run_copy))
    assert_one_line_exit_2(code, stderr, str(path))


@pytest.mark.parametrize("kind", ["folder", "binary"])
@pytest.mark.parametrize("which", ["--baseline", "--rules"])
def test_a_baseline_or_gates_file_that_is_a_folder_or_binary_cannot_be_judged_exit_2(run_copy, tmp_path, kind, which):
    """Exit 1 means "regression" to CI; a file that cannot be read must say "cannot judge" (2)."""
    path = tmp_path / "given"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff" * 10)
    code, _, stderr = cli("gate", which, str(path), str(run_copy))
    assert_one_line_exit_2(code, stderr, str(path))


def test_baseline_save_refuses_the_runs_own_records_a_folder_and_a_users_file(run_copy, tmp_path):
    before = (run_copy / "results.jsonl").read_bytes()
    code, _, stderr = cli("baseline", "save", str(run_copy), "--to", str(run_copy / "results.jsonl"))
    assert_one_line_exit_2(code, stderr, "exists and is not a benchbench baseline")
    assert (run_copy / "results.jsonl").read_bytes() == before
    (tmp_path / "folder").mkdir()
    assert_one_line_exit_2(*cli("baseline", "save", str(run_copy), "--to", str(tmp_path / "folder"))[::2], "is a folder")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert_one_line_exit_2(*cli("baseline", "save", str(run_copy), "--to", str(notes))[::2], "not a benchbench baseline")
    assert notes.read_text() == "mine"
    assert cli("baseline", "save", str(run_copy), "--to", str(tmp_path / "b.json"))[0] == 0
    assert cli("baseline", "save", str(run_copy), "--to", str(tmp_path / "b.json"))[0] == 0  # a baseline is replaced


def test_report_in_a_read_only_folder_and_baseline_save_to_one_are_one_line_exit_2(finished_run, small_tmpfs):
    run = read_only_copy(finished_run, small_tmpfs)
    code, _, stderr = cli("report", str(run))
    assert_one_line_exit_2(code, stderr, f"report folder {run}: cannot write (Read-only file system)")
    code, _, stderr = cli("baseline", "save", str(run), "--to", str(run / "b.json"))
    assert_one_line_exit_2(code, stderr, "cannot write (Read-only file system)")


def test_plot_labels_are_literal_text_not_matplotlib_math(finished_run, tmp_path):
    odd = tmp_path / "run $\\foo$ $x^2$"
    shutil.copytree(finished_run, odd)
    code, _, stderr = cli("compare", str(finished_run), str(odd), "--output-dir", str(tmp_path / "cmp"))
    assert code == 0, stderr
    assert "run \\$\\\\foo\\$" in (tmp_path / "cmp" / "report.md").read_text()


# ---------------------------------------------------------------- input refused before anything runs


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "http://127.0.0.1:99999", "http://127.0.0.1:{free}", "http://"])
def test_an_unusable_server_url_exits_2_before_any_worker_or_report(tmp_path, url):
    url = url.format(free=free_port())
    out = tmp_path / "run"
    code, _, stderr = cli("run", "--backend", "openai", "--url", url, "--output-dir", str(out), "--no-progress")
    assert_one_line_exit_2(code, stderr, url)
    assert not out.exists()


def test_an_infinite_request_timeout_exits_2_before_running(tmp_path):
    code, _, stderr = cli("run", "--request-timeout", "inf", "--output-dir", str(tmp_path / "run"))
    assert_one_line_exit_2(code, stderr, "timeouts.request_s", "finite")
    assert not (tmp_path / "run").exists()


def test_flags_given_with_resume_are_refused_not_ignored(run_copy):
    _edit_manifest(run_copy, lambda m: {**m, "backends": [{**m["backends"][0], "status": "interrupted"}]})
    code, _, stderr = cli("run", "--resume", str(run_copy), "--requests", "50", "--model", "/elsewhere")
    assert_one_line_exit_2(code, stderr, "--resume continues a run exactly as it was recorded", "--model", "--requests")


def test_an_output_dir_holding_the_users_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my notes")
    (out / "summary.csv").write_text("a,b\n")
    code, _, stderr = cli("run", "--output-dir", str(out), "--no-progress")
    assert_one_line_exit_2(code, stderr, "already holds files (report.md, summary.csv)")
    assert (out / "report.md").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == ["report.md", "summary.csv"]


# ---------------------------------------------------------------- damaged run folders, at random


@pytest.fixture(scope="module")
def interrupted_run(finished_run, tmp_path_factory) -> tuple[Path, Path]:
    """The finished run with its last record gone and its backend marked interrupted (resumable), and a
    baseline saved from the whole run."""
    folder = tmp_path_factory.mktemp("interrupted")
    baseline = folder / "baseline.json"
    assert cli("baseline", "save", str(finished_run), "--to", str(baseline))[0] == 0
    run = folder / "run"
    shutil.copytree(finished_run, run)
    lines = (run / "results.jsonl").read_bytes().splitlines(keepends=True)
    (run / "results.jsonl").write_bytes(b"".join(lines[:-1]))
    _edit_manifest(run, lambda m: {**m, "backends": [{**m["backends"][0], "status": "interrupted"}]})
    return run, baseline


def _complete_lines(data: bytes) -> set[bytes]:
    return {line for line in data.splitlines(keepends=True) if line.endswith(b"\n") and line.startswith(b'{"schema')}


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(["results.jsonl", "manifest.json"]),
       damage=st.sampled_from(["truncate", "corrupt", "insert"]),
       where=st.floats(0, 1), garbage=st.binary(min_size=1, max_size=40))
def test_any_damaged_run_folder_either_works_or_is_one_line_exit_2_and_keeps_every_complete_record(
    interrupted_run, tmp_path_factory, target, damage, where, garbage
):
    """report, gate and resume (up to the worker's start: read, check, repair the tail) on a damaged copy."""
    source, baseline = interrupted_run
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(source, run)
    path = run / target
    data = path.read_bytes()
    offset = int(where * len(data))
    damaged = {"truncate": data[:offset], "corrupt": data[:offset] + garbage + data[offset + len(garbage):],
               "insert": data[:offset] + garbage + data[offset:]}[damage]
    path.write_bytes(damaged)
    complete = _complete_lines((run / "results.jsonl").read_bytes())

    for argv, codes in ((["report", str(run)], {0, 2}), (["gate", "--baseline", str(baseline), str(run)], {0, 1, 2})):
        code, _, stderr = cli(*argv)
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert code in codes and len(errors) <= 1 and (code != 2 or errors or argv[0] == "gate"), stderr
    try:
        bench.load_for_resume(run)
        repair_tail(run)
    except BenchError as exc:
        assert "\n" not in str(exc)
    assert complete <= _complete_lines((run / "results.jsonl").read_bytes())
