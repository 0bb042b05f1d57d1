"""The serve-sweep scenario end to end (small): the real CLI, the tiny model batched and one at a
time, a report whose load section names each engine's sustained rate (or says none met the SLO),
summary.csv with a row per engine and point, and a baseline and gate rules on NAME@POINT."""

from __future__ import annotations

import csv
import json
import re

import pytest


@pytest.mark.slow
def test_serve_sweep_reports_each_engines_points_headline_curves_and_gates_per_point(run_bench, benchbench_cli, tmp_path):
    out = tmp_path / "run"
    result = run_bench("--scenario", "serve-sweep", "--requests", "2", "--repeats", "3", "--max-new-tokens", "2",
                       "--concurrency", "1,2", "--output-dir", str(out), "--no-progress", timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["phase"] == "measure"]
    assert len(measured) == 2 * 2 * 3 * 2  # backends x points x repeats x requests
    assert all(r["fairness"]["ok"] and r["load"]["status"] == "ok" for r in records)
    report = (out / "report.md").read_text()
    assert "## Load: the highest rate each engine sustains within the SLO" in report
    assert "**Sustained rate:**" in report
    assert "| batched | static | 8 |" in report and "| serial | static | 1 |" in report
    for label in ("batched", "serial"):
        assert f"*{label}: rates over each repeat's wall span" in report
    assert report.count("| concurrency=2 | 6 |") == 2  # one row per engine's point table, 3 repeats x 2 requests
    assert (out / "load_curves.png").stat().st_size > 0 and (out / "load_levels.png").stat().st_size > 0
    # the general sections compare engines at each point; nothing pools an engine's points
    headline = report.split("## Headline: who is faster\n", 1)[1].split("\n## ", 1)[0]
    latency = report.split("## Latency\n", 1)[1].split("\n## ", 1)[0]
    assert "compared at each point, never across points" in headline
    assert "vs batched@concurrency=2 (" in headline and "at the same point" in headline
    for section in (headline, latency):
        assert all(f"| {label}@{point} |" in section for label in ("batched", "serial")
                   for point in ("concurrency=1", "concurrency=2"))
        assert "| batched |" not in section and "| serial |" not in section
    assert re.search(r"batched\s+concurrency=1\s+6\s", result.stdout) and not re.search(r"batched\s+6\s", result.stdout)

    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["backend"], r["point"], r["requests"]) for r in rows] == [
        (label, point, "6") for label in ("batched", "serial") for point in ("concurrency=1", "concurrency=2")]
    assert all(float(r["req_s"]) > 0 and float(r["error_rate"]) == 0 and r["goodput_req_s"] != "" for r in rows)

    baseline = tmp_path / "baseline.json"
    assert benchbench_cli("baseline", "save", str(out), "--to", str(baseline)).returncode == 0
    samples = json.loads(baseline.read_text())["backends"]["batched"]["metrics"]
    assert len(samples["ttft_s_p99@concurrency=2"]) == 3 and "ttft_s_p99" not in samples
    gated = benchbench_cli("gate", "--baseline", str(baseline), "--rule", "goodput_req_s@concurrency=2: -5%",
                           "--rule", "ttft_s_p99@concurrency=1: +10%", str(out))  # fmt: skip
    assert gated.returncode == 0, gated.stdout + gated.stderr  # the run against its own baseline
    assert gated.stdout.count("goodput_req_s@concurrency=2: -5%") == 2  # a verdict per engine
    refused = benchbench_cli("gate", "--baseline", str(baseline), "--rule", "req_s@concurrency=8: -5%", str(out))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "no load point 'concurrency=8'; its points are concurrency=1, concurrency=2" in refused.stderr
