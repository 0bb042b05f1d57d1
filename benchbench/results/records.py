"""The result schema: one record per request (results.jsonl) and one manifest per run.

Records are plain data with a schema version; a reader refuses files from a newer benchbench.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchbench.errors import BenchError
from benchbench.results.load import LoadFields

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"


class Fairness(BaseModel):
    """Whether the request ran the planned workload. ``violations`` name what differed;
    ``unchecked`` names what this engine could not report."""

    ok: bool
    violations: list[str] = Field(default_factory=list)
    unchecked: list[str] = Field(default_factory=list)


class RequestRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    backend: str
    backend_kind: str
    phase: Literal["warmup", "measure"]
    request_id: str
    turn: int = 1
    repeat: int
    started_at: float
    max_tiles: int
    tiles_planned: int
    tiles: int | None
    image_tokens_planned: int
    image_tokens: int | None
    input_tokens: int | None
    max_new_tokens: int
    output_tokens: int
    preprocess_s: float
    ttft_s: float | None
    decode_s: float | None
    e2e_s: float
    decode_tok_s: float | None
    inter_token_s: list[float] | None = None
    preprocess_in_ttft: bool
    text: str
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    fairness: Fairness
    details: dict[str, Any] = Field(default_factory=dict)
    load: LoadFields | None = None
    """where the request ran in a load point (None: a serial run)"""


class BackendOutcome(BaseModel):
    """How one backend's part of the run went; written to the manifest as it changes."""

    name: str
    kind: str
    options: dict[str, Any]
    status: Literal["pending", "running", "ok", "failed", "interrupted"] = "pending"
    load_s: float | None = None
    load_info: dict[str, Any] = Field(default_factory=dict)
    capabilities: dict[str, bool] = Field(default_factory=dict)
    error: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    """Per phase (``load``, ``serve``): GPU and process-tree usage (execution/resources.py)."""


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    created_at: str
    command: list[str]
    scenario: dict[str, Any]
    scenario_hash: str
    workload_hash: str
    repeats: int
    seed: int
    model: dict[str, Any]
    settings: dict[str, Any]
    environment: dict[str, Any]
    backends: list[BackendOutcome]


class RecordSink:
    """Appends records to results.jsonl. ``append`` hands each line to the kernel at once, so a
    crash of the process loses nothing finished; ``sync`` (fsync) makes them survive the machine's."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / RESULTS_FILE
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, record: RequestRecord) -> None:
        self._file.write(record.model_dump_json() + "\n")
        self._file.flush()

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _check_version(version: Any, where: str) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise BenchError(
            f"{where}: schema version {version} is newer than this benchbench ({SCHEMA_VERSION}); upgrade benchbench"
        )


def read_records(run_dir: Path) -> list[RequestRecord]:
    """All complete records of a run; a torn last line (a crash mid-write) is skipped."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise BenchError(f"run folder {run_dir}: no {RESULTS_FILE}; give a folder written by 'benchbench run'")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise BenchError(f"{path}:{number}: not valid JSON; the file is damaged") from None
        _check_version(data.get("schema_version"), f"{path}:{number}")
        try:
            records.append(RequestRecord.model_validate(data))
        except ValidationError as exc:
            raise BenchError(f"{path}:{number}: not a benchbench record ({exc.error_count()} errors)") from None
    return records


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically, so a reader never sees half a file."""
    path = Path(run_dir) / MANIFEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"run folder {run_dir}: no {MANIFEST_FILE}; give a folder written by 'benchbench run'") from None
    except json.JSONDecodeError:
        raise BenchError(f"{path}: not valid JSON; the file is damaged") from None
    _check_version(data.get("schema_version"), str(path))
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{path}: not a benchbench manifest ({exc.error_count()} errors)") from None


def to_dataframe(records: list[RequestRecord]) -> pd.DataFrame:
    """The one bridge to pandas: a row per record, fairness flattened to columns."""
    import pandas as pd

    nested = {"fairness", "token_ids", "inter_token_s", "details"}
    columns = [name for name in RequestRecord.model_fields if name not in nested] + ["fair", "violations"]
    rows = []
    for record in records:
        row = record.model_dump(exclude=nested)
        row["fair"] = record.fairness.ok
        row["violations"] = "; ".join(record.fairness.violations)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
