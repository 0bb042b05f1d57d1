"""What a gate compares: per backend and metric the repeat-level samples, the outputs per request,
the workload hash and the environment fingerprint of one run. Saved as versioned JSON.

The same snapshot is taken of the run being gated, so a gate compares like with like.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchbench.errors import BenchError
from benchbench.files import FileError, read_text, write_text_atomic
from benchbench.results.load import point_samples
from benchbench.results.metrics import FORMER_NAMES, repeat_samples, split_point
from benchbench.results.records import Manifest, RequestRecord, first_problem, read_manifest, read_records

BASELINE_SCHEMA_VERSION = 2
"""2: metric names from the registry (``ttft_s_p90``); 1 (``ttft_p90_s``) is upgraded on load."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(_Strict):
    token_ids: list[int] | None
    text: str


class BackendSnapshot(_Strict):
    kind: str
    status: str
    error: str | None = None
    repeats: int
    metrics: dict[str, list[float]] = Field(description="metric (NAME@POINT under load) -> one sample per repeat, "
                                                        "in repeat order")
    outputs: dict[str, list[Output]] = Field(description="request id -> its distinct outputs, first repeat first")
    unfair_requests: int
    violations: list[str] = Field(default_factory=list, description="the first few fairness violations")

    @property
    def points(self) -> list[str]:
        """The load points its metrics were measured at (none for a serial run), in run order."""
        return list(dict.fromkeys(point for name in self.metrics if (point := split_point(name)[1]) is not None))


class Snapshot(_Strict):
    schema_version: int = BASELINE_SCHEMA_VERSION
    created_at: str
    source: str
    scenario: str
    workload_hash: str
    model: dict[str, Any]
    environment: dict[str, Any]
    backends: dict[str, BackendSnapshot]


def snapshot(records: list[RequestRecord], manifest: Manifest, source: str) -> Snapshot:
    """The gate's view of one run: measured records only, per backend the manifest names."""
    measured = [record for record in records if record.phase == "measure"]
    backends = {}
    for outcome in manifest.backends:
        own = [record for record in measured if record.backend == outcome.name]
        backends[outcome.name] = BackendSnapshot(
            kind=outcome.kind, status=outcome.status, error=outcome.error,
            repeats=len({record.repeat for record in own}),
            metrics=point_samples(own) if any(r.load is not None for r in own) else repeat_samples(own),
            outputs=_distinct_outputs(own),
            unfair_requests=sum(not record.fairness.ok for record in own),
            violations=[f"{r.request_id} (repeat {r.repeat}): {v}" for r in own for v in r.fairness.violations][:5],
        )
    return Snapshot(
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        source=source, scenario=manifest.scenario.get("name", "?"), workload_hash=manifest.workload_hash,
        model=manifest.model, environment=manifest.environment, backends=backends,
    )


def _distinct_outputs(records: list[RequestRecord]) -> dict[str, list[Output]]:
    outputs: dict[str, list[Output]] = {}
    for record in sorted(records, key=lambda r: r.repeat):
        output = Output(token_ids=record.token_ids, text=record.text)
        seen = outputs.setdefault(record.request_id, [])
        if output not in seen:
            seen.append(output)
    return outputs


def snapshot_run(run_dir: Path) -> Snapshot:
    return snapshot(read_records(run_dir), read_manifest(run_dir), source=str(run_dir))


def check_fit_for_baseline(baseline: Snapshot) -> None:
    """A baseline must be a complete, fair run: anything else would excuse the same fault later."""
    for name, backend in baseline.backends.items():
        if backend.status != "ok":
            raise BenchError(f"run {baseline.source}: backend {name} is {backend.status}; save a baseline from a finished run")
        if backend.unfair_requests:
            raise BenchError(f"run {baseline.source}: backend {name} has {backend.unfair_requests} unfair request(s); "
                             "fix the fairness violations before saving a baseline")


def save_baseline(baseline: BaseModel, path: Path) -> None:
    """Write a baseline; refuses to replace any file that is not a baseline (a run's records, a user's file)."""
    path = Path(path)
    fix = "choose another --to path (a new .json file)"
    if path.is_dir():
        raise FileError(f"baseline {path}: is a folder; {fix}")
    if path.exists():
        try:
            load_baseline(path, type(baseline))
        except BenchError:
            raise FileError(f"baseline {path}: exists and is not a benchbench baseline; {fix}, or delete it") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileError(f"baseline {path}: cannot create its folder ({exc.strerror}); {fix}") from None
    write_text_atomic(path, baseline.model_dump_json(indent=1) + "\n", "baseline", fix)


def load_baseline(path: Path, model: type[BaseModel] = Snapshot):
    """Read a baseline file (a run's ``Snapshot``, or ``model``), refusing one written by a newer benchbench."""
    fix = "save it with 'benchbench baseline save RUN_DIR --to FILE'"
    try:
        data = json.loads(read_text(Path(path), "baseline", fix))
    except json.JSONDecodeError:
        raise BenchError(f"baseline {path}: not valid JSON; {fix}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > BASELINE_SCHEMA_VERSION:
        raise BenchError(f"baseline {path}: schema version {version} is newer than this benchbench "
                         f"({BASELINE_SCHEMA_VERSION}); upgrade benchbench")
    if version == 1:
        data = upgrade_schema_1(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"baseline {path}: not a benchbench baseline ({first_problem(exc)}); {fix}") from None


def upgrade_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 baseline (a run's, or a sweep's cells) with its metrics renamed to the registry's names."""
    upgraded = {**data, "schema_version": BASELINE_SCHEMA_VERSION}
    if isinstance(data.get("backends"), dict):
        upgraded["backends"] = {name: _renamed(backend) for name, backend in data["backends"].items()}
    if isinstance(data.get("cells"), dict):
        upgraded["cells"] = {cell: upgrade_schema_1(snap) if isinstance(snap, dict) else snap
                             for cell, snap in data["cells"].items()}
    return upgraded


def _renamed(backend: Any) -> Any:
    if not (isinstance(backend, dict) and isinstance(backend.get("metrics"), dict)):
        return backend
    return {**backend, "metrics": {FORMER_NAMES.get(m, m): samples for m, samples in backend["metrics"].items()}}
