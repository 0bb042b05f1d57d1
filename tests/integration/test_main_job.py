"""The main job end to end: the real CLI in a subprocess running the real tiny InternVL on CPU."""

import json

import pytest

from benchbench.results.records import read_manifest, read_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ten_x_runs(tmp_path_factory):
    """Two runs of the same command, shared by the tests that inspect them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    runs = []
    for attempt in range(2):
        out = tmp_path_factory.mktemp(f"run{attempt}")
        result = subprocess.run(
            [sys.executable, str(root / "run_bench.py"), "--scenario", "10x-image", "--output-dir", str(out / "r"), "--no-progress"],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=600,
        )
        runs.append((result, out / "r"))
    return runs


def test_10x_image_exits_zero_with_report_files(ten_x_runs):
    result, run_dir = ten_x_runs[0]
    assert result.returncode == 0, result.stderr
    for name in ("results.jsonl", "manifest.json", "summary.csv", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    assert "report:" in result.stdout
    summary_rows = [line.split()[0] for line in result.stdout.splitlines()[1:3]]
    assert summary_rows == ["sdpa", "eager"]


def test_10x_image_compares_two_attention_implementations_that_really_ran(ten_x_runs):
    manifest = read_manifest(ten_x_runs[0][1])
    used = {outcome.name: outcome.load_info["attn_implementation"] for outcome in manifest.backends}
    assert used == {"sdpa": "sdpa", "eager": "eager"}
    assert all(outcome.status == "ok" and outcome.kind == "transformers" for outcome in manifest.backends)


def test_10x_image_report_gives_relative_speed_what_differs_and_a_request_by_request_comparison(ten_x_runs):
    report = (ten_x_runs[0][1] / "report.md").read_text()
    assert "**Relative speed:** eager " in report and "x \\[" in report and "vs sdpa" in report
    assert "eager differs from sdpa in: attn\\_implementation sdpa → eager; everything else is the same" in report
    assert "| sdpa vs eager | token ids | 10 |" in report
    assert "**Why:** sdpa and eager" in report
    fairness_rows = [line for line in report.splitlines() if line.startswith(("| sdpa | ✔ ok", "| eager | ✔ ok"))]
    assert len(fairness_rows) == 2


def test_10x_image_records_ten_fair_measured_requests_after_a_warmup(ten_x_runs):
    records = read_records(ten_x_runs[0][1])
    for backend in ("sdpa", "eager"):
        phases = [r.phase for r in records if r.backend == backend]
        assert phases[0] == "warmup" and phases.count("measure") == 10
    for record in records:
        assert record.fairness.ok, record.fairness.violations
        assert record.output_tokens == record.max_new_tokens == 32
        assert record.tiles == record.tiles_planned and record.image_tokens == record.image_tokens_planned
        assert 0 < record.ttft_s < record.e2e_s and record.preprocess_s > 0 and record.decode_tok_s > 0
        assert len(record.token_ids) == 32 and record.text


def test_same_command_twice_gives_same_workload_and_identical_tokens(ten_x_runs):
    (_, first), (_, second) = ten_x_runs
    assert read_manifest(first).workload_hash == read_manifest(second).workload_hash
    tokens = [[r.token_ids for r in read_records(d)] for d in (first, second)]
    assert tokens[0] == tokens[1]


def test_manifest_captures_environment_model_and_command(ten_x_runs):
    manifest = json.loads((ten_x_runs[0][1] / "manifest.json").read_text())
    assert manifest["model"]["embedded_tiny_model"] is True and len(manifest["model"]["weights"]["sha256"]) == 64
    assert manifest["environment"]["packages"]["torch"] and manifest["environment"]["python"]
    assert "nvml_error" in manifest["environment"] and "10x-image" in manifest["command"]
    assert [b["status"] for b in manifest["backends"]] == ["ok", "ok"]
    assert all(b["load_s"] > 0 for b in manifest["backends"])
    assert manifest["scenario"]["name"] == "10x-image"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        (["--model", "/no/such/model"], "model /no/such/model: no such directory"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--backend", "tranformers"], "did you mean 'transformers'"),
    ],
)
def test_bad_input_is_one_line_nonzero_no_traceback(run_bench, tmp_path, args, message):
    result = run_bench(*args, "--output-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_folder_without_checkpoint_is_a_one_line_error(run_bench, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_bench("--model", str(tmp_path / "empty"), "--requests", "1", "--output-dir", str(tmp_path / "r"), "--no-progress")
    assert result.returncode != 0 and "no config.json" in result.stderr and "Traceback" not in result.stderr
