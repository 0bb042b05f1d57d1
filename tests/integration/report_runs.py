"""Real tiny-model runs for the report tests, and edited copies of them.

An edited copy changes a finished run's files on purpose (a diverging answer, a failed backend,
a stand-in flag) to exercise the report; it is test input, never presented as a measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TWO_BACKENDS = """
name: report-two-backends
description: Two transformers backends, one slowed by a test-only delay, for the report tests.
seed: 0
images:
  synthetic:
    sizes: [[800, 600], [448, 448], [1024, 512]]
images_per_request: 1
prompt:
  system: "Answer <b>briefly</b>."
  turns:
    - user: "<image>\\nDescribe <script>alert('prompt')</script> this image."
requests: 3
warmup: 1
repeats: 2
max_new_tokens: 8
tiling: {max_num: 2}
backends:
  - kind: transformers
  - kind: transformers
    label: transformers-slow
    options: {sleep_per_token_s: 0.004}
"""

MULTI_TURN = """
name: report-multi-turn
description: Two turns about the same image, for the report's turns section.
seed: 0
images:
  synthetic:
    sizes: [[800, 600], [448, 448]]
prompt:
  turns:
    - user: "<image>\\nDescribe this image."
      assistant: "Gradients and shapes."
    - user: "Which colour is largest?"
requests: 2
warmup: 0
max_new_tokens: 4
"""

TILES_SWEEP = """
name: report-tiles-sweep
description: Two tile budgets, one repeat, for the report's sweep section.
seed: 0
images:
  synthetic:
    sizes: [[1280, 960], [960, 1280]]
images_per_request: 1
prompt:
  turns:
    - user: "<image>\\nDescribe this image."
requests: 2
warmup: 1
max_new_tokens: 4
tiling: {sweep_max_num: [1, 4]}
"""


def run_scenario(folder: Path, scenario_text: str) -> Path:
    """``python run_bench.py`` on a scenario file in a real subprocess; returns the run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    scenario = folder / "scenario.yaml"
    scenario.write_text(scenario_text, encoding="utf-8")
    run_dir = folder / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "--scenario", str(scenario), "--output-dir", str(run_dir), "--no-progress"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return run_dir


def edited_copy(
    run_dir: Path,
    destination: Path,
    edit_record: Callable[[dict], None] = lambda record: None,
    edit_manifest: Callable[[dict], None] = lambda manifest: None,
) -> Path:
    """A copy of a run holding only results.jsonl and manifest.json, each passed through an edit."""
    destination.mkdir(parents=True)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:
        edit_record(record)
    (destination / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    edit_manifest(manifest)
    (destination / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return destination


def diverge_first_answer(record: dict, text: str = "A <script>alert('output')</script> answer") -> None:
    """The slow backend's first answer to r000 becomes markup, with its fourth token changed."""
    if record["backend"] == "transformers-slow" and record["request_id"] == "r000" and record["repeat"] == 0:
        record["text"] = text
        record["token_ids"] = record["token_ids"][:3] + [999_999] + record["token_ids"][4:]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str, profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Headless Chromium with everything that would reach the network switched off."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([chromium_path(), *flags, *args], capture_output=True, text=True, timeout=timeout)
