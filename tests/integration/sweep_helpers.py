"""The tiny-model sweep the sweep tests run (2 tile budgets x 2 output lengths), and what "the same
cell results" means when two executors ran it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name: sweep-tiny
images: {synthetic: {sizes: [[896, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe this image."}]}
requests: 1
warmup: 0
max_new_tokens: 4
"""
SWEEP = """\
scenario: base.yaml
axes:
  tiling.max_num: [1, 2]
  max_new_tokens: [2, 3]
"""
CELL_IDS = ["1-max_num=1-max_new_tokens=2", "2-max_num=1-max_new_tokens=3", "3-max_num=2-max_new_tokens=2",
            "4-max_num=2-max_new_tokens=3"]
COMPARED_FIELDS = ("backend", "phase", "request_id", "repeat", "max_tiles", "tiles_planned", "tiles", "image_tokens",
                   "input_tokens", "max_new_tokens", "output_tokens", "text", "token_ids", "fairness")


def write_sweep(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(SCENARIO)
    (folder / "sweep.yaml").write_text(SWEEP + extra)
    return folder / "sweep.yaml"


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}


def sweep_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbench", *args], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def outcomes(sweep_dir: Path) -> dict[str, dict]:
    return json.loads((sweep_dir / "sweep.json").read_text())["outcomes"]


def cell_results(sweep_dir: Path, cell_id: str) -> tuple[str, list[dict]]:
    """A cell's workload hash and its records without timings (what must not depend on the executor)."""
    folder = sweep_dir / "cells" / cell_id
    manifest = json.loads((folder / "manifest.json").read_text())
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    return manifest["workload_hash"], [{key: record[key] for key in COMPARED_FIELDS} for record in records]
