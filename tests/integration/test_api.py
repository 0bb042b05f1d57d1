"""The library API as the README shows it, run on the tiny model; ``import benchbench`` stays cheap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_snippet() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_snippet_runs_and_writes_a_complete_run_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "reports" / "api-demo"
    assert result.stdout.splitlines()[0] == "True reports/api-demo/report.html"
    assert re.search(r"^\d+\s+transformers\s+2\s", result.stdout, re.M), result.stdout  # the summary's row
    for name in ("manifest.json", "results.jsonl", "summary.csv", "report.html", "workload/requests.json"):
        assert (run_dir / name).is_file(), name


def test_importing_benchbench_loads_neither_the_api_nor_heavy_libraries():
    code = ("import sys, benchbench; heavy = {'benchbench.api', 'torch', 'pydantic', 'pandas'} & set(sys.modules); "
            "print(sorted(heavy)); print(callable(benchbench.run), 'benchbench.api' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[:2] == ["[]", "True True"], result.stderr
