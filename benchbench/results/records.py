"""The result schema: one record per request (results.jsonl) and one manifest per run.

Records are plain data with a schema version; a reader refuses files from a newer benchbench.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import Required, TypedDict

from benchbench.errors import BenchError
from benchbench.files import FileError, open_regular, read_text, write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 3
"""2: records carry typed ``notes``; a version-1 record's inter-token warning (in ``details``) becomes one.
3: records may carry ``inter_chunk_s`` (a stream whose chunks' token counts are unknown); older
records load unchanged (their ``inter_token_s`` may hold such a stream's chunk gaps, with a note)."""
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
log = logging.getLogger(__name__)


class Fairness(BaseModel):
    """Whether the request ran the planned workload. ``violations`` name what differed;
    ``unchecked`` names what this engine could not report."""

    ok: bool
    violations: list[str] = Field(default_factory=list)
    unchecked: list[str] = Field(default_factory=list)


class RecordNote(BaseModel):
    """Something a backend observed about one request that a reader should know: not a fairness
    violation, but a reason to read a number with care. The report's checks list them by ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    """A short stable key that groups notes across requests, e.g. ``inter_token_chunks``."""
    message: str
    severity: Literal["warn", "info"] = "warn"


class LoadFields(BaseModel):
    """One request's place in its load point; times in seconds from the point's start."""

    model_config = ConfigDict(extra="forbid")

    point: str
    """the point's label: ``serial``, ``concurrency=4``, ``rate=2``, ``throughput``"""
    point_kind: Literal["serial", "concurrency", "rate", "throughput"]
    point_value: float
    due_s: float
    sent_s: float
    lag_s: float | None = None
    """the client's scheduling lag (HTTP load client only): sent late, not waiting for a slot"""
    queue_s: float = 0.0
    """waited for a free in-flight slot (client cap) or for the engine (in process)"""
    first_byte_s: float | None = None
    """send to the response's first byte (HTTP)"""
    in_flight_at_send: int
    batch_size: int | None = None
    status: Literal["ok", "error", "timeout"] = "ok"
    message: str = ""
    within_slo: bool | None = None


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
    """the gap before each token after the first; None where the stream does not say how many
    tokens each chunk carried"""
    inter_chunk_s: list[float] | None = None
    """the gap before each chunk after the first, kept only where per-token gaps are unknown"""
    preprocess_in_ttft: bool
    text: str
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    fairness: Fairness
    notes: list[RecordNote] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    load: LoadFields | None = None
    """where the request ran in a load point (None: a serial run)"""
    session: int = Field(default=0, ge=0, description="which uninterrupted stretch of this backend's run wrote it: "
                         "0 the first, one more per resume; rates are measured within a stretch, never across a gap")

    @model_validator(mode="before")
    @classmethod
    def _upgrade_schema_1(cls, data: Any) -> Any:
        """Version 1 kept the OpenAI backend's inter-token warning as free text in ``details``."""
        if isinstance(data, dict) and data.get("schema_version") == 1 and "inter_token_warning" in data.get("details", {}):
            details = dict(data["details"])
            note = {"kind": "inter_token_chunks", "message": details.pop("inter_token_warning")}
            data = {**data, "details": details, "notes": [note]}
        return data


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


class WeightsFacts(TypedDict):
    sha256: str
    method: str


class ModelFacts(TypedDict, total=False):
    """What the manifest says of the model; typed so a damaged manifest is refused when read, not deep in a report."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    path: Required[str]
    embedded_tiny_model: bool
    weights: WeightsFacts | None


class GpuFacts(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    index: int
    name: str
    memory_total_mib: float | None


class EnvironmentFacts(TypedDict, total=False):
    """The fingerprint (environment.py) as far as reports and gates read it; more keys are kept."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    python: str
    platform: str
    cpu: str | None
    cpu_count: int | None
    memory_gib: float | None
    packages: dict[str, str | None]
    git: dict[str, Any]
    gpus: list[GpuFacts]
    driver: str | None
    nvml_error: str | None


class SettingsFacts(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    model_path: Required[str]
    dtype: Required[str]
    device: str | None
    seed: int
    trust_remote_code: bool


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    created_at: str
    command: list[str]
    scenario: dict[str, Any]
    scenario_hash: str
    workload_hash: str
    repeats: int
    seed: int
    model: ModelFacts
    settings: SettingsFacts
    environment: EnvironmentFacts
    backends: list[BackendOutcome]
    report_status: Literal["pending", "written"] | None = Field(
        default=None, description="pending while the run's report is being written: an interruption leaves it so")


class RecordSink:
    """Appends records to results.jsonl. ``append`` hands each line to the kernel at once, so a
    crash of the process loses nothing finished; ``sync`` (fsync) makes them survive the machine's.
    Unbuffered: a failed write (full disk) raises at once and leaves nothing queued to write later.
    """

    def __init__(self, run_dir: Path, session: int = 0):
        self.path, self.session = run_dir / RESULTS_FILE, session
        try:
            self._file = self.path.open("ab", buffering=0)
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def append(self, record: RequestRecord) -> None:
        if record.session != self.session:
            record = record.model_copy(update={"session": self.session})
        line = memoryview((record.model_dump_json() + "\n").encode("utf-8"))
        try:
            while line:
                line = line[self._file.write(line):]
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        self._file.close()


def _write_error(path: Path, exc: OSError) -> FileError:
    return FileError(f"run folder {path.parent}: cannot write {path.name} ({exc.strerror}); "
                     f"free space or make it writable, then continue with --resume {path.parent}")


def first_problem(exc: ValidationError) -> str:
    """The first validation problem on one line: which field, and what is wrong with it."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]).encode("unicode_escape").decode() or "(top level)"
    more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
    return f"field '{field}': {error['msg']}{more}"


def _check_version(version: Any, where: str) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise BenchError(
            f"{where}: schema version {version} is newer than this benchbench ({SCHEMA_VERSION}); upgrade benchbench"
        )


@dataclass(frozen=True)
class RecordsScan:
    """results.jsonl read back: its complete records, and where the intact part of the file ends."""

    path: Path
    records: list[RequestRecord]
    intact_bytes: int
    size: int

    @property
    def damaged_tail(self) -> int:
        """Bytes after the last complete record that hold no record (a write cut short)."""
        return self.size - self.intact_bytes


def _parse_line(line: bytes, where: str) -> RequestRecord | str | None:
    """A record, None for a blank line, or why the line is not a record."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return "not valid JSON" if text.endswith("\n") else "cut short (no line end)"
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a record"
    _check_version(data.get("schema_version"), where)
    try:
        return RequestRecord.model_validate(data)
    except ValidationError as exc:
        return f"not a benchbench record ({first_problem(exc)})"


def scan_records(run_dir: Path) -> RecordsScan:
    """Every complete record; a damaged tail (what a crash or full disk leaves) is measured, not read.

    Damage with complete records after it is refused: skipping it would hide a hole in the run.
    """
    path = Path(run_dir) / RESULTS_FILE
    fix = "give a run folder written by 'benchbench run'"
    with open_regular(path, "run results", fix) as handle:
        records, intact, offset, damage = [], 0, 0, None
        for number, line in enumerate(handle, start=1):
            offset += len(line)
            parsed = _parse_line(line, f"{path}:{number}")
            if isinstance(parsed, RequestRecord):
                if damage:
                    raise BenchError(f"{path}:{damage[0]}: {damage[1]}, with complete records after it; the file is "
                                     f"damaged: remove line {damage[0]} (the other records are kept) and retry")
                records.append(parsed)
                intact = offset
            elif parsed is None:
                intact = offset if damage is None else intact
            elif damage is None:
                damage = (number, parsed)
    return RecordsScan(path, records, intact, offset)


def read_records(run_dir: Path) -> list[RequestRecord]:
    """The complete records of a run that stand (``standing``); a damaged tail is left out (and
    reported), damage before a record is refused."""
    scan = scan_records(run_dir)
    if scan.damaged_tail:
        log.warning("%s: %d byte(s) after the last complete record are damaged (a write cut short) and left out; "
                    "'--resume' sets them aside", scan.path, scan.damaged_tail)
    return standing(scan.records)


def standing(records: list[RequestRecord]) -> list[RequestRecord]:
    """Records minus superseded attempts: ``--resume`` reruns an unfinished load point from its start
    (its load and timing are one piece), so of each backend's point only the latest session's
    records count; the file keeps every attempt. Serial records are never rerun, so all stand."""
    latest: dict[tuple[str, str], int] = {}
    for record in records:
        if record.load is not None:
            key = (record.backend, record.load.point)
            latest[key] = max(latest.get(key, record.session), record.session)
    return [r for r in records if r.load is None or r.session == latest[(r.backend, r.load.point)]]


def repair_tail(run_dir: Path) -> Path | None:
    """Before appending: move a damaged tail of results.jsonl to a file beside it, so the next record
    starts on a line of its own. Returns where the bytes went, or None when the file was intact."""
    scan = scan_records(run_dir)
    if not scan.damaged_tail:
        _end_last_line(scan.path)
        return None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = scan.path.with_name(f"{RESULTS_FILE}.damaged-{stamp}")
    try:
        with scan.path.open("r+b") as handle:
            handle.seek(scan.intact_bytes)
            aside.write_bytes(handle.read())
            handle.truncate(scan.intact_bytes)
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _write_error(scan.path, exc) from None
    log.warning("%s: the last %d byte(s) held no complete record (a write cut short); moved them to %s and "
                "kept the %d complete record(s) before them", scan.path, scan.damaged_tail, aside.name, len(scan.records))
    return aside


def _end_last_line(path: Path) -> None:
    """A last record cut just before its line end gets one, so the next record is not glued to it."""
    try:
        with path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
    except OSError as exc:
        raise _write_error(path, exc) from None


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically, so a reader never sees half a file."""
    write_text_atomic(Path(run_dir) / MANIFEST_FILE, manifest.model_dump_json(indent=2) + "\n", "run manifest",
                      f"free space or make it writable, then continue with --resume {run_dir}")


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST_FILE
    text = read_text(path, "run manifest", "give a run folder written by 'benchbench run'")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise BenchError(f"{path}: not valid JSON; the file is damaged") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: a JSON {type(data).__name__}, not a benchbench manifest; the file is damaged")
    _check_version(data.get("schema_version"), str(path))
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{path}: not a benchbench manifest ({first_problem(exc)}); the file is damaged") from None


def to_dataframe(records: list[RequestRecord]) -> pd.DataFrame:
    """The one bridge to pandas: a row per record, fairness flattened to columns."""
    import pandas as pd

    nested = {"fairness", "token_ids", "inter_token_s", "inter_chunk_s", "notes", "details"}
    columns = [name for name in RequestRecord.model_fields if name not in nested] + ["fair", "violations"]
    rows = []
    for record in records:
        row = record.model_dump(exclude=nested)
        row["fair"] = record.fairness.ok
        row["violations"] = "; ".join(record.fairness.violations)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
