"""A load run's report compares engines at each load point, never across points: the headline's
ratios are against the reference engine at the same point, the latency table has a row per engine
and point, and no row pools an engine's points (hand-made records, the real report builder); a
sweep's load cell has a row per backend and point."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchbench.report.writer import write_report
from benchbench.results import metrics
from benchbench.results.records import BackendOutcome, Fairness, LoadFields, Manifest, RequestRecord, write_manifest
from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.folder import SweepRecord
from benchbench.sweep.spec import Objective
from benchbench.sweep.table import best_per_engine, cell_rows

ENV = {"cpu": "Test CPU 3000", "cpu_count": 2, "gpus": [], "packages": {"torch": "2.13.0"}}
REPEAT_SCALE = (1.0, 1.1, 0.9)
SECONDS = {("a", 1): 1.0, ("b", 1): 2.0, ("a", 2): 2.0, ("b", 2): 1.0}
"""Each request's seconds: a is twice as fast as b alone, half as fast with two in flight."""
WATTS = 100.0
SERVE = {"phase": "serve", "started_at": 1000.0, "window_s": 30.0, "samples": 450, "sampler_cpu_s": 0.05,
         "host_rss_peak_mib": 900.0, "host_cpu_s": 12.0, "gpu_error": None, "timeline": [],
         "gpus": [{"index": 0, "name": "H100", "memory_peak_mib": 800.0, "memory_mean_mib": 600.0,
                   "sm_util_mean_pct": 50.0, "power_mean_w": WATTS, "energy_j": 3000.0}]}
"""The sampler's serving window (as a worker writes it): one GPU drawing WATTS."""


def _records() -> list[RequestRecord]:
    records, clock = [], 1000.0
    for backend in ("a", "b"):
        for concurrency in (1, 2):
            load = LoadFields(point=f"concurrency={concurrency}", point_kind="concurrency", point_value=concurrency,
                              due_s=0.0, sent_s=0.0, lag_s=None, in_flight_at_send=1, status="ok")
            for repeat, scale in enumerate(REPEAT_SCALE):
                for index in range(2):
                    e2e = SECONDS[(backend, concurrency)] * scale
                    records.append(RequestRecord(
                        backend=backend, backend_kind="transformers", phase="measure", request_id=f"r{index}",
                        repeat=repeat, started_at=clock, max_tiles=6, tiles_planned=1, tiles=1,
                        image_tokens_planned=256, image_tokens=256, input_tokens=300, max_new_tokens=4,
                        output_tokens=4, preprocess_s=0.0, ttft_s=e2e / 4, decode_s=e2e * 3 / 4, e2e_s=e2e,
                        decode_tok_s=4 / e2e, preprocess_in_ttft=False, text="abcd", token_ids=[1, 2, 3, 4],
                        fairness=Fairness(ok=True), load=load, details={"resources": {
                            "gpu_mem_peak_mib": 500.0 + 100 * concurrency, "energy_mj_start": clock * WATTS * 1e3,
                            "energy_mj_end": (clock + e2e) * WATTS * 1e3}}))  # fmt: skip
                    clock += e2e
    return records


@pytest.fixture(scope="module")
def load_run(tmp_path_factory) -> Path:
    run_dir: Path = tmp_path_factory.mktemp("load-run")
    (run_dir / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in _records()))
    write_manifest(run_dir, Manifest(
        created_at="now", command=["test"], scenario={"name": "synthetic", "load": {"concurrency": [1, 2]}},
        scenario_hash="s", workload_hash="w", repeats=3, seed=0,
        model={"path": "synthetic", "weights": {"sha256": "w", "method": "full"}},
        settings={"model_path": "synthetic", "dtype": "float32"}, environment=ENV,
        backends=[BackendOutcome(name=name, kind="transformers", options={"max_batch_size": size}, status="ok",
                                 resources={"serve": SERVE})
                  for name, size in (("a", 8), ("b", 1))]))  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def report(load_run) -> str:
    write_report(load_run)
    return (load_run / "report.md").read_text()


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_headline_compares_engines_at_each_point_against_the_reference_at_that_point(report):
    headline = _section(report, "Headline: who is faster")
    assert "compared at each point, never across points" in headline and "load section" in headline
    assert "b@concurrency=1 0.500x" in headline and "vs a@concurrency=1 (slower)" in headline
    assert "b@concurrency=2 2.00x" in headline and "vs a@concurrency=2 (faster)" in headline
    rows = [line.split(" | ")[0] for line in headline.splitlines() if line.startswith("| ") and "@concurrency" in line]
    assert rows == ["| a@concurrency=1", "| b@concurrency=1", "| a@concurrency=2", "| b@concurrency=2"]
    assert "| a | " not in headline and "| b | " not in headline  # nothing pooled over an engine's points


def test_latency_has_a_row_per_engine_and_point_with_that_points_percentiles(report):
    latency = _section(report, "Latency")
    at_b2 = [r for r in _records() if r.backend == "b" and r.load.point == "concurrency=2"]
    ttft = " / ".join(f"{v:.4g}" for v in metrics.shown_values(at_b2, "ttft_s_p50", "ttft_s_p90", "ttft_s_p99"))
    assert f"| b@concurrency=2 | 0 | {ttft} |" in latency
    assert "never pooled across points" in latency and "| a | " not in latency and "| b | " not in latency


def test_an_option_sweep_is_drawn_per_point(report):
    assert "## Sweep over max\\_batch\\_size at concurrency=1" in report
    assert "## Sweep over max\\_batch\\_size at concurrency=2" in report


def test_gpu_memory_and_energy_per_token_are_per_point_not_over_the_serving_window(report):
    resources = _section(report, "Resources: memory and energy")
    assert "| a | serve | 800 | 600 | 50 | 100 | 3,000 | per load point below |" in resources
    # 100 W over each repeat's span: a alone takes 1 s a request of 4 tokens, so 25 J per token
    assert "| a@concurrency=1 | 600 | 25 |" in resources and "| a@concurrency=2 | 700 | 50 |" in resources


def test_a_sweep_cell_with_load_points_has_a_row_per_backend_and_point_and_the_objective_picks_a_point(load_run, tmp_path):
    shutil.copytree(load_run, tmp_path / "cells" / "1")
    cell = Cell(id="1", label="1", assignments={}, scenario={}, model=None, device=None, trust_remote_code=False,
                gpus=0, cpus=1, timeout_s=None, workload_hash="w")
    record = SweepRecord(created_at="now", source="", spec={}, cells=[cell], skipped=[],
                         outcomes={"1": CellOutcome(status="ok")})
    rows = cell_rows(tmp_path, record)
    assert [row.name for row in rows] == ["1/a@concurrency=1", "1/a@concurrency=2", "1/b@concurrency=1", "1/b@concurrency=2"]
    at_b2 = [r for r in _records() if r.backend == "b" and r.load.point == "concurrency=2"]
    assert rows[3].metric("ttft_s_p99") == pytest.approx(metrics.metric("ttft_s").aggregate(at_b2, "p99"))
    fastest = best_per_engine(rows, Objective(minimize="e2e_s_p50"))["transformers"].name
    assert fastest in ("1/a@concurrency=1", "1/b@concurrency=2")  # a alone and b with two in flight tie
