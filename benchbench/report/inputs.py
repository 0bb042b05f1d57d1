"""What a report is built from: one or more run folders, read back from records and manifests alone.

In a single-run report a backend keeps its name; across runs it becomes ``<run>/<name>``. A backend
whose options or load facts say ``stand_in: true`` carries "(stand-in)" in its label everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.results.records import BackendOutcome, Manifest, RequestRecord, read_manifest, read_records

STAND_IN_SUFFIX = " (stand-in)"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True)
class Run:
    label: str
    path: Path
    manifest: Manifest
    records: list[RequestRecord]


@dataclass(frozen=True)
class BackendView:
    """One backend as the report shows it: its label (the key in the relabelled records) and colour."""

    key: str
    run: Run
    outcome: BackendOutcome
    colour: str
    point: str | None = None
    """In a load run's general sections, one view per backend and load point (``key`` is ``backend@point``)."""

    @property
    def stand_in(self) -> bool:
        return is_stand_in(self.outcome)

    @property
    def label(self) -> str:
        return self.key + (STAND_IN_SUFFIX if self.stand_in else "")


def is_stand_in(outcome: BackendOutcome) -> bool:
    """A backend that says it is a stand-in server (``stand_in: true`` in its load facts or options)."""
    return outcome.load_info.get("stand_in") is True or outcome.options.get("stand_in") is True


@dataclass(frozen=True)
class ReportInput:
    runs: list[Run]
    backends: list[BackendView]
    records: list[RequestRecord]
    reference: BackendView | None

    @property
    def comparing_runs(self) -> bool:
        return len(self.runs) > 1

    def label(self, key: str) -> str:
        return next(view.label for view in self.backends if view.key == key)

    def measured(self, key: str) -> list[RequestRecord]:
        return [r for r in self.records if r.backend == key and r.phase == "measure"]

    @property
    def under_load(self) -> bool:
        """A run with load points: its records carry the point they were measured at."""
        return any(r.load is not None for r in self.records if r.phase == "measure")


def read_run(path: Path, label: str | None = None) -> Run:
    path = Path(path)
    return Run(label or path.name, path, read_manifest(path), read_records(path))


def load_input(run_dirs: Sequence[Path], reference: str | None = None, allow_different_workloads: bool = False) -> ReportInput:
    """Read the runs, label their backends, and choose the reference backend for relative speeds."""
    runs = [read_run(path, label) for path, label in zip(run_dirs, _run_labels(run_dirs))]
    if not allow_different_workloads:
        _check_same_workload(runs)
    many = len(runs) > 1
    backends, records = [], []
    for run in runs:
        for outcome in run.manifest.backends:
            key = f"{run.label}/{outcome.name}" if many else outcome.name
            backends.append(BackendView(key, run, outcome, PALETTE[len(backends) % len(PALETTE)]))
        for record in run.records:
            records.append(record.model_copy(update={"backend": f"{run.label}/{record.backend}"}) if many else record)
    return ReportInput(runs, backends, records, _reference(backends, records, reference))


def _run_labels(run_dirs: Sequence[Path]) -> list[str]:
    names = [Path(path).resolve().name for path in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [f"run{index + 1}-{name}" for index, name in enumerate(names)]


def _check_same_workload(runs: list[Run]) -> None:
    first = runs[0]
    for run in runs[1:]:
        if run.manifest.workload_hash != first.manifest.workload_hash:
            raise BenchError(
                f"runs {first.path} and {run.path} ran different workloads (hash {first.manifest.workload_hash[:12]} vs "
                f"{run.manifest.workload_hash[:12]}); compare runs of one scenario, or pass --allow-different-workloads"
            )


def _reference(backends: list[BackendView], records: list[RequestRecord], wanted: str | None) -> BackendView | None:
    """The named backend, else the first one with measured requests."""
    measured = {r.backend for r in records if r.phase == "measure"}
    if wanted is None:
        return next((view for view in backends if view.key in measured), None)
    for view in backends:
        if wanted in (view.key, view.label):
            if view.key not in measured:
                raise BenchError(f"--reference {wanted}: that backend has no measured requests; choose another")
            return view
    choices = ", ".join(view.key for view in backends)
    raise BenchError(f"--reference {wanted}: no such backend; choose one of {choices}")
