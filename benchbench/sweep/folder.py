"""The sweep folder: sweep.json (the file, the plan, each cell's outcome), cells/<cell-id>/ run folders,
and attempts/<cell-id>/<n>/ for the folders of earlier tries of a cell that did not finish."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchbench.errors import BenchError
from benchbench.sweep.cells import Cell, CellOutcome

SWEEP_SCHEMA_VERSION = 1
SWEEP_FILE = "sweep.json"
CELLS_DIR = "cells"
ATTEMPTS_DIR = "attempts"


class SweepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SWEEP_SCHEMA_VERSION
    created_at: str
    source: str = Field(description="the sweep file's text")
    spec: dict[str, Any]
    cells: list[Cell]
    skipped: list[dict[str, Any]]
    outcomes: dict[str, CellOutcome]

    def unfinished(self) -> list[Cell]:
        return [cell for cell in self.cells if self.outcomes[cell.id].status != "ok"]


def new_record(source: str, spec: dict[str, Any], cells: list[Cell], skipped: list[dict[str, Any]]) -> SweepRecord:
    return SweepRecord(created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), source=source,
                       spec=spec, cells=cells, skipped=skipped, outcomes={cell.id: CellOutcome() for cell in cells})


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def cell_dir(sweep_dir: Path, cell_id: str) -> Path:
    return Path(sweep_dir) / CELLS_DIR / cell_id


def create_sweep_dir(path: Path) -> Path:
    if is_sweep_dir(path):
        raise BenchError(f"sweep folder {path}: already holds a sweep; continue it with --resume {path} or choose another --output-dir")
    try:
        (Path(path) / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"sweep folder {path}: cannot create it ({exc.strerror}); choose another --output-dir") from None
    return Path(path)


def save_record(sweep_dir: Path, record: SweepRecord) -> None:
    """Replace sweep.json atomically: an interrupted sweep always leaves a readable one."""
    path = Path(sweep_dir) / SWEEP_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.model_dump_json(indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_record(sweep_dir: Path) -> SweepRecord:
    path = Path(sweep_dir) / SWEEP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"sweep folder {sweep_dir}: no {SWEEP_FILE}; give a folder written by 'benchbench sweep'") from None
    except json.JSONDecodeError:
        raise BenchError(f"{path}: not valid JSON; the file is damaged") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > SWEEP_SCHEMA_VERSION:
        raise BenchError(f"{path}: schema version {version} is newer than this benchbench ({SWEEP_SCHEMA_VERSION}); upgrade benchbench")
    try:
        return SweepRecord.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{path}: not a benchbench sweep ({exc.error_count()} errors)") from None


def set_aside(sweep_dir: Path, cell_id: str) -> None:
    """Move an unfinished cell's folder to attempts/<cell-id>/<n>/ so the cell can run afresh."""
    folder = cell_dir(sweep_dir, cell_id)
    if not folder.exists():
        return
    attempts = Path(sweep_dir) / ATTEMPTS_DIR / cell_id
    attempts.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(attempts / str(len(list(attempts.iterdir())) + 1)))
