"""The serve-sweep scenario end to end (small): the real CLI, the tiny model batched and one at a
time, a report whose load section names each engine's sustained rate (or says none met the SLO)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_serve_sweep_reports_each_engines_points_headline_and_curves(run_bench, tmp_path):
    out = tmp_path / "run"
    result = run_bench("--scenario", "serve-sweep", "--requests", "2", "--repeats", "2", "--max-new-tokens", "2",
                       "--concurrency", "1,2", "--output-dir", str(out), "--no-progress", timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["phase"] == "measure"]
    assert len(measured) == 2 * 2 * 2 * 2  # backends x points x repeats x requests
    assert all(r["fairness"]["ok"] and r["load"]["status"] == "ok" for r in records)
    report = (out / "report.md").read_text()
    assert "## Load: the highest rate each engine sustains within the SLO" in report
    assert "**Sustained rate:**" in report
    assert "| batched | static | 8 |" in report and "| serial | static | 1 |" in report
    for label in ("batched", "serial"):
        assert f"*{label}: rates over each point's wall span" in report
    assert report.count("| concurrency=2 | 4 |") == 2  # one row per engine's point table, 2 repeats x 2 requests
    assert (out / "load_curves.png").stat().st_size > 0 and (out / "load_levels.png").stat().st_size > 0
