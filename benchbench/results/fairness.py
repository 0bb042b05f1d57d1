"""Did an engine run the planned workload? A per-request verdict, never averaged away."""

from __future__ import annotations

from benchbench.backends.base import Capabilities, Generation
from benchbench.results.records import Fairness
from benchbench.workload.build import WorkloadRequest


def check_fairness(request: WorkloadRequest, generation: Generation, capabilities: Capabilities) -> Fairness:
    violations, unchecked = [], []
    if generation.output_tokens != request.max_new_tokens:
        violations.append(f"output_tokens {generation.output_tokens} != max_new_tokens {request.max_new_tokens}")
    for what, used, planned in (
        ("tiles", generation.tiles, request.tiles_planned),
        ("image_tokens", generation.image_tokens, request.image_tokens_planned),
    ):
        if used is None:
            unchecked.append(f"{what} (engine does not report them)")
        elif used != planned:
            violations.append(f"{what} {used} != planned {planned}")
    if not capabilities.controls_tiles and request.images:
        unchecked.append("tile budget (engine takes no per-request max_dynamic_patch)")
    if not capabilities.forces_exact_tokens:
        unchecked.append("exact token count (engine cannot be forced; counted what came back)")
    if not capabilities.streams_tokens:
        unchecked.append("ttft (engine does not stream)")
    return Fairness(ok=not violations, violations=violations, unchecked=unchecked)
