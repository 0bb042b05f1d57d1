"""A cell: one isolated run of the sweep (a full scenario, a model, the resources it reserves),
and how it ended. Plain data that travels to a Ray worker and into sweep.json."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from benchbench.backends.base import parse_options
from benchbench.backends.registry import backend_class
from benchbench.config.scenario import Scenario

CellStatus = Literal["pending", "running", "ok", "failed", "timed_out", "interrupted"]
GPU_PLACEMENTS = {"cuda": 1}
"""Transformers placements on one GPU; ``auto`` and ``split`` span as many as they are given."""


class Cell(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str
    assignments: dict[str, Any]
    scenario: dict[str, Any]
    model: str | None
    device: str | None
    trust_remote_code: bool
    gpus: int | None
    """GPUs the cell reserves on a Ray node; None when it spans an unknown number (auto/split placement)."""
    cpus: float
    timeout_s: float | None
    workload_hash: str


class CellOutcome(BaseModel):
    """How a cell ended; ``reason`` says why when it is not ``ok``."""

    model_config = ConfigDict(extra="forbid")

    status: CellStatus = "pending"
    reason: str | None = None
    node: str | None = None
    seconds: float | None = None
    attempts: int = 0
    executor_s: dict[str, float] = {}
    """The executor's own costs for this cell (Ray: submit → start, packing, shipping back)."""


def cell_gpus(scenario: Scenario, device: str | None) -> int | None:
    """GPUs a cell needs: the most any of its backends needs (they run one after another).

    Read from options, not engine names: a ``tp`` option is the GPU count, a server ``url`` needs
    none here, a Transformers ``placement`` of cuda one, auto/split an unknown number.
    """
    if device == "cpu":
        return 0
    counts = []
    for spec in scenario.backends:
        options = parse_options(backend_class(spec.kind), spec.options, spec.name)
        if getattr(options, "url", None):
            counts.append(0)
        elif hasattr(options, "tp"):
            counts.append(options.tp)
        elif getattr(options, "placement", "default") in ("auto", "split"):
            counts.append(None)
        else:
            placement = getattr(options, "placement", "default")
            counts.append(GPU_PLACEMENTS.get(placement, 1 if device == "cuda" and placement == "default" else 0))
    return None if None in counts else max(counts, default=0)
