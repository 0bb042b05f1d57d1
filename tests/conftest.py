"""Shared fixtures: one tiny-model cache per test session, and a helper to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def benchbench_cache(tmp_path_factory) -> Path:
    """Build the tiny model once per session, in a cache of the session's own (or BENCHBENCH_CACHE)."""
    cache = Path(os.environ.get("BENCHBENCH_TEST_CACHE") or tmp_path_factory.mktemp("bbcache"))
    os.environ["BENCHBENCH_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(benchbench_cache) -> Path:
    from benchbench.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_bench():
    """``python run_bench.py ARGS`` in a real subprocess (the README's main job)."""
    return lambda *args, timeout=300: _run([sys.executable, str(ROOT / "run_bench.py"), *args], timeout)


@pytest.fixture
def benchbench_cli():
    """``benchbench ARGS`` (as ``python -m benchbench``) in a real subprocess."""
    return lambda *args, timeout=300: _run([sys.executable, "-m", "benchbench", *args], timeout)


@pytest.fixture
def small_tmpfs(tmp_path) -> Path:
    """A 16 MiB tmpfs of the test's own, for full-disk and read-only cases; mounting needs root (as on CI)."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)
