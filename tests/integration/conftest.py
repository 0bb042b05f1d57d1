"""Fixtures shared by the sweep tests: the tiny-model sweep run once on the local executor."""

from __future__ import annotations

import pytest
from sweep_helpers import sweep_cli, write_sweep


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory, benchbench_cache):
    """(sweep folder, completed CLI process) of the 4-cell tiny sweep run with executor local."""
    folder = tmp_path_factory.mktemp("sweep-local")
    result = sweep_cli("sweep", str(write_sweep(folder)), "--output-dir", str(folder / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out", result
