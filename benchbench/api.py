"""The library API: run a scenario, rebuild or compare reports, gate a run. The CLI only calls these.

    import benchbench
    result = benchbench.run("10x-image", benchbench.RunOptions(requests=2, warmup=0))
    print(result.summary[["backend", "req_s"]], result.report_path)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchbench.config.overrides import ScenarioOverrides
from benchbench.errors import BenchError

if TYPE_CHECKING:
    import pandas as pd

    from benchbench.config.scenario import Scenario
    from benchbench.gate.judge import GateResult
    from benchbench.gate.rules import Check
    from benchbench.results.records import Manifest, RequestRecord
    from benchbench.workload.build import Workload

DEVICES = (None, "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions(ScenarioOverrides):
    """How to run a scenario: its overrides (see ``ScenarioOverrides``) plus where and on what."""

    model: str | Path | None = None
    """Checkpoint folder; None: the embedded tiny InternVL."""
    device: str | None = None
    """Default placement of in-process engines: "cpu", "cuda" or None (CUDA when there is one)."""
    output_dir: str | Path | None = None
    """Run folder [reports/<scenario>-<time>]."""
    output_dir_owned: tuple[str, ...] = ()
    """Names the caller itself put in ``output_dir`` for this run (a sweep cell's cell.json and logs/)."""
    trust_remote_code: bool = False
    command: Sequence[str] | None = None
    """The command recorded in the manifest to reproduce the run [sys.argv]."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise BenchError(f"device {self.device!r}: use 'cpu', 'cuda' or None")


class RunObserver:
    """Hooks a caller gets during a run (the CLI's progress bar); the defaults do nothing."""

    def started(self, run_dir: Path, total_requests: int) -> None:
        """The run folder exists; ``total_requests`` records are to come."""

    def record(self, record: RequestRecord) -> None:
        """A record reached the run folder (called as the backend's worker reports it)."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    manifest: Manifest
    report_path: Path

    @property
    def ok(self) -> bool:
        """Every backend finished."""
        return all(outcome.status == "ok" for outcome in self.manifest.backends)

    @property
    def summary(self) -> pd.DataFrame:
        """The report's per-backend summary (summary.csv)."""
        import pandas as pd

        return pd.read_csv(self.run_dir / "summary.csv")


def run(scenario: str | Path | Scenario = "10x-image", options: RunOptions | None = None,
        observer: RunObserver | None = None) -> RunResult:
    """Run a scenario (built-in name, YAML path or Scenario) through its backends; write the run folder and report."""
    from benchbench.config.overrides import apply_overrides
    from benchbench.config.scenario import Scenario, load_scenario
    from benchbench.execution import bench
    from benchbench.execution.runlock import lock_run_dir
    from benchbench.execution.runner import RunSettings
    from benchbench.workload.build import build_workload

    options = options or RunOptions()
    base = scenario if isinstance(scenario, Scenario) else load_scenario(str(scenario))
    scenario = apply_overrides(base, options)
    bench.check_backends(scenario)
    model_path, model_info = bench.resolve_model(None if options.model is None else str(options.model))
    workload = build_workload(scenario)
    run_dir = bench.create_run_dir(Path(options.output_dir) if options.output_dir else bench.default_run_dir(scenario),
                                  owned=options.output_dir_owned)
    lock_run_dir(run_dir)  # before the manifest: of two runs racing for one folder, one writes
    settings = RunSettings(run_dir, model_path, scenario.dtype, options.device, scenario.seed, options.trust_remote_code)
    manifest = bench.start_run(scenario, workload, settings, model_info, list(options.command or sys.argv))
    return _execute(scenario, workload, manifest, run_dir, observer or RunObserver())


RESUME_LOCK_WAIT_S = 20.0  # a killed run's worker sees its parent gone and ends itself (and its servers)


def resume(run_dir: str | Path, observer: RunObserver | None = None) -> RunResult:
    """Finish an interrupted run folder without redoing its finished requests."""
    from benchbench.execution import bench
    from benchbench.execution.processes import sweep_run_folder
    from benchbench.execution.runlock import lock_run_dir

    run_dir = Path(run_dir)
    lock_run_dir(run_dir, wait_s=RESUME_LOCK_WAIT_S)
    sweep_run_folder(run_dir)  # a killed run's worker or server may linger; none may write beside us
    scenario, workload, manifest = bench.load_for_resume(run_dir)
    return _execute(scenario, workload, manifest, run_dir, observer or RunObserver())


def _execute(scenario: Scenario, workload: Workload, manifest: Manifest, run_dir: Path, observer: RunObserver) -> RunResult:
    """Every unfinished backend, then the report; on Ctrl-C the report of what finished, then re-raised."""
    from benchbench.execution import bench

    observer.started(run_dir, len(scenario.backends) * (len(workload.warmup) + len(workload.measured) * workload.repeats))
    try:
        manifest = bench.run_backends(scenario, manifest, run_dir, observer.record)
    except KeyboardInterrupt:
        _run_report(run_dir)
        raise
    report_path = _run_report(run_dir)
    manifest.report_status = "written"
    return RunResult(run_dir, manifest, report_path)


def _run_report(run_dir: Path) -> Path:
    """The run's report, with the manifest saying "pending" until it is whole (an interruption leaves it so)."""
    from benchbench.results.records import read_manifest, write_manifest

    manifest = read_manifest(run_dir)
    manifest.report_status = "pending"
    write_manifest(run_dir, manifest)
    return report(run_dir)


def report(run_dir: str | Path, reference: str | None = None) -> Path:
    """Rebuild a run's (or a sweep folder's) report from its folder alone; returns report.html's path."""
    from benchbench.report import write_report
    from benchbench.sweep.folder import is_sweep_dir
    from benchbench.results.records import read_manifest, write_manifest
    from benchbench.sweep.report import write_sweep_report

    if is_sweep_dir(run_dir):
        return write_sweep_report(Path(run_dir))
    path = write_report(Path(run_dir), reference=reference)
    manifest = read_manifest(run_dir)
    if manifest.report_status == "pending":  # a run interrupted while writing it: now it is whole
        manifest.report_status = "written"
        write_manifest(run_dir, manifest)
    return path


def compare(run_dirs: Sequence[str | Path], output_dir: str | Path | None = None, reference: str | None = None,
            allow_different_workloads: bool = False) -> Path:
    """One report across run folders (backends named <run>/<backend>); returns report.html's path."""
    import datetime as dt

    from benchbench.execution.bench import REPORTS_ROOT
    from benchbench.report import write_comparison

    if len(run_dirs) < 2:
        raise BenchError("compare: give two or more run folders (for one run use 'benchbench report RUN_DIR')")
    output_dir = Path(output_dir) if output_dir else REPORTS_ROOT / f"compare-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return write_comparison([Path(d) for d in run_dirs], output_dir, reference, allow_different_workloads)


def gate(run_dir: str | Path, baseline: str | Path, rules: Sequence[str | Check] = (),
         allow_different_hardware: bool = False) -> GateResult:
    """Judge a run (or a sweep folder, cell by cell) against a baseline file; rules as text
    ('output_tok_s: -5%') or parsed, none: the defaults."""
    from benchbench.gate.baseline import load_baseline, snapshot_run
    from benchbench.gate.judge import evaluate
    from benchbench.gate.rules import default_rules, parse_rule
    from benchbench.sweep import gate as sweep_gate
    from benchbench.sweep.folder import is_sweep_dir

    parsed = [parse_rule(rule) if isinstance(rule, str) else rule for rule in rules] or default_rules()
    run_dir, baseline = Path(run_dir), Path(baseline)
    if is_sweep_dir(run_dir) != sweep_gate.is_sweep_baseline(baseline):
        raise BenchError(f"gate: {run_dir} and baseline {baseline} must both be sweeps or both single runs")
    if is_sweep_dir(run_dir):
        return sweep_gate.evaluate_sweep(sweep_gate.load_sweep_baseline(baseline), sweep_gate.snapshot_sweep(run_dir),
                                         parsed, allow_different_hardware)
    return evaluate(load_baseline(baseline), snapshot_run(run_dir), parsed, allow_different_hardware)
