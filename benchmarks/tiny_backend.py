"""Shared by the in-process benchmarks: the tiny model loaded in a Transformers backend, warmed up."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.backends.base import BackendContext  # noqa: E402
from benchbench.backends.transformers import TransformersBackend, TransformersOptions  # noqa: E402
from benchbench.config.scenario import load_scenario  # noqa: E402
from benchbench.execution.runner import measure_request  # noqa: E402
from benchbench.models.tiny import ensure_tiny_model  # noqa: E402
from benchbench.workload.build import Workload, build_workload  # noqa: E402


def warm_tiny_backend(scenario: str) -> tuple[TransformersBackend, Workload]:
    """The scenario's workload and a loaded CPU backend that has already run its warmups."""
    workload = build_workload(load_scenario(scenario))
    context = BackendContext("transformers", ensure_tiny_model(), "auto", "cpu", Path("."), 0)
    backend = TransformersBackend(TransformersOptions(), context)
    backend.load()
    for request in workload.warmup:
        measure_request(backend, request, repeat=0)
    return backend, workload
