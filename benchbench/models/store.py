"""Where embedded models are cached, and the one way they are built there: atomically, once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("BENCHBENCH_CACHE", Path.home() / ".cache" / "benchbench"))


def ensure_built(name: str, build: Callable[[Path], None]) -> Path:
    """The cached model folder ``name``, built by ``build(folder)`` on first use.

    It is built in a staging folder and renamed into place, so concurrent runs never see half a model.
    """
    target = cache_root() / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").is_file():  # a concurrent build did not win either
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
