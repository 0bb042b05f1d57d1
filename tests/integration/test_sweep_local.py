"""A tiny-model sweep on the local executor: every cell an isolated run with its own manifest, one
report rebuilt from the folder alone, the gate cell by cell, and input errors before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest

from sweep_helpers import CELL_IDS, outcomes, sweep_cli, write_sweep

pytestmark = pytest.mark.slow


def test_plan_and_size_are_printed_before_the_cells_run(local_sweep):
    _, result = local_sweep
    lines = result.stdout.splitlines()
    size = next(i for i, line in enumerate(lines) if line.startswith("4 cell(s), 0 combination(s) skipped, 4 distinct workload(s)"))
    first_cell = next(i for i, line in enumerate(lines) if line.startswith("cell 1-max_num=1-max_new_tokens=2 ok"))
    assert size < first_cell


def test_every_cell_is_an_isolated_run_with_its_own_manifest(local_sweep):
    sweep_dir, _ = local_sweep
    plan = {cell["id"]: cell for cell in json.loads((sweep_dir / "sweep.json").read_text())["cells"]}
    assert sorted(plan) == CELL_IDS
    for cell_id, outcome in outcomes(sweep_dir).items():
        assert outcome["status"] == "ok", outcome
        manifest = json.loads((sweep_dir / "cells" / cell_id / "manifest.json").read_text())
        assert manifest["workload_hash"] == plan[cell_id]["workload_hash"]
        assert manifest["scenario"]["max_new_tokens"] == plan[cell_id]["assignments"]["max_new_tokens"]
        assert (sweep_dir / "cells" / cell_id / "logs" / "transformers.log").is_file()


def test_sweep_report_lists_every_cell_and_rebuilds_identically_from_the_folder(local_sweep):
    sweep_dir, _ = local_sweep
    before = (sweep_dir / "report.md").read_text()
    assert all(f"| {cell_id.replace('_', chr(92) + '_')} |" in before for cell_id in CELL_IDS)
    assert (sweep_dir / "axis-tiling.max_num.png").is_file() and (sweep_dir / "axis-max_new_tokens.png").is_file()
    assert "highest output\\_tok\\_s" in before
    rebuilt = sweep_cli("report", str(sweep_dir))
    assert rebuilt.returncode == 0, rebuilt.stderr
    drop_generated = lambda text: [line for line in text.splitlines() if not line.startswith("Generated ")]  # noqa: E731
    assert drop_generated((sweep_dir / "report.md").read_text()) == drop_generated(before)


def test_gate_judges_a_sweep_cell_by_cell_against_a_sweep_baseline(local_sweep, tmp_path):
    sweep_dir, _ = local_sweep
    saved = sweep_cli("baseline", "save", str(sweep_dir), "--to", str(tmp_path / "base.json"))
    assert saved.returncode == 0, saved.stderr
    changed = tmp_path / "changed"
    shutil.copytree(sweep_dir, changed)
    results = changed / "cells" / CELL_IDS[2] / "results.jsonl"
    record = json.loads(results.read_text())
    record["token_ids"] = [token + 1 for token in record["token_ids"]]
    results.write_text(json.dumps(record) + "\n")
    rules = ["--rule", "fairness: must_pass", "--rule", "consistency.exact_match: >= 0.99"]
    same = sweep_cli("gate", "--baseline", str(tmp_path / "base.json"), *rules, str(sweep_dir))
    assert same.returncode == 0, same.stdout + same.stderr
    assert all(f"{cell_id}/transformers" in same.stdout for cell_id in CELL_IDS)
    gated = sweep_cli("gate", "--baseline", str(tmp_path / "base.json"), *rules, str(changed))
    assert gated.returncode == 1, gated.stdout
    regressed = {cell for cell in CELL_IDS for line in gated.stdout.splitlines() if "REGRESSION" in line and f"{cell}/" in line}
    assert regressed == {CELL_IDS[2]}, gated.stdout


def test_resume_of_a_finished_sweep_is_a_one_line_error(local_sweep):
    sweep_dir, _ = local_sweep
    result = sweep_cli("sweep", "--resume", str(sweep_dir))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: sweep folder {sweep_dir}: every cell already finished; nothing to resume"


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    result = sweep_cli("sweep", str(write_sweep(tmp_path)), "--dry-run", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "4 cell(s), 0 combination(s) skipped, 4 distinct workload(s), executor local" in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, args, message", [
    ("  tiling.max_nm: [1]\n", [], "error: sweep axis 'tiling.max_nm': no scenario field 'max_nm' (did you mean 'max_num'?)"),
    ("  transformers.placement: [gpu]\n", [], "error: sweep cell "),
    ("  lmdeploy.tp: [1, 2]\n", [], "error: sweep axis 'lmdeploy.tp': applies to no cell"),
    ("", ["--executor", "ray", "--ray-address", "127.0.0.1:1"], "error: Ray address 127.0.0.1:1: unreachable"),
])
def test_bad_input_is_one_line_before_anything_runs(tmp_path, extra, args, message):
    result = sweep_cli("sweep", str(write_sweep(tmp_path, extra)), "--output-dir", str(tmp_path / "out"), *args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_empty_axes_are_an_error(tmp_path):
    sweep = write_sweep(tmp_path)
    sweep.write_text("scenario: base.yaml\naxes: {}\n")
    result = sweep_cli("sweep", str(sweep), timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: sweep: 'axes' is empty, so there is nothing to sweep")
