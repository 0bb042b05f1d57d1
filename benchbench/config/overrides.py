"""Settings that override a scenario for one run (the CLI flags, or the library's RunOptions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchbench.config.scenario import Scenario
from benchbench.errors import BenchError

SERVER_KINDS = frozenset({"openai", "lightllm"})


@dataclass(frozen=True)
class ScenarioOverrides:
    """What a run changes in its scenario; None (or empty) keeps the scenario's value."""

    requests: int | None = None
    warmup: int | None = None
    repeats: int | None = None
    max_new_tokens: int | None = None
    dtype: str | None = None
    backends: Sequence[str] = ()
    """Backend kinds; replaces the scenario's list."""
    url: str | None = None
    """Server URL for the openai/lightllm kinds among ``backends``."""
    backend_options: Sequence[str] = ()
    """``BACKEND.KEY=VALUE`` assignments, VALUE read as YAML."""
    load_8bit: bool = False
    load_4bit: bool = False
    request_timeout_s: float | None = None
    load_timeout_s: float | None = None
    """Seconds loading a backend may take, its network probes included."""
    backend_timeout_s: float | None = None
    concurrency: Sequence[int] = ()
    """Closed-loop load points; replaces the scenario's load block (with ``rate``/``sweep``: one of them)."""
    rate: Sequence[float] = ()
    """Open-loop load points in requests/s."""
    sweep: int | None = None
    """A sweep of this many rates between serial and saturated throughput."""
    arrivals: str | None = None
    """Arrival process of open-loop points: poisson, constant or gamma."""
    client_processes: int | None = None
    """Load-client processes for server backends."""


def apply_overrides(scenario: Scenario, overrides: ScenarioOverrides) -> Scenario:
    """The scenario with the overrides applied, validated like a scenario file."""
    fields: dict[str, Any] = dict(requests=overrides.requests, warmup=overrides.warmup, repeats=overrides.repeats,
                                  max_new_tokens=overrides.max_new_tokens, dtype=overrides.dtype)
    if overrides.backends:
        fields["backends"] = backend_specs(overrides.backends, overrides.url)
    elif overrides.url:
        raise BenchError("--url goes with --backend openai or --backend lightllm")
    assignments = [*overrides.backend_options]
    assignments += [f"transformers.{flag}=true" for flag in ("load_8bit", "load_4bit") if getattr(overrides, flag)]
    if assignments:
        specs = fields.get("backends") or [b.model_dump() for b in scenario.backends]
        fields["backends"] = set_backend_options(specs, assignments)
    timeouts = {"request_s": overrides.request_timeout_s, "load_s": overrides.load_timeout_s,
                "backend_s": overrides.backend_timeout_s}
    if any(value is not None for value in timeouts.values()):
        fields["timeouts"] = {**scenario.timeouts.model_dump(),
                              **{key: value for key, value in timeouts.items() if value is not None}}
    load = _load_override(scenario, overrides)
    if load is not None:
        fields["load"] = load
    return scenario.with_overrides(**fields)


def _load_override(scenario: Scenario, overrides: ScenarioOverrides) -> dict | None:
    """--concurrency / --rate / --sweep replace the scenario's load points; --arrivals changes its process,
    --client-processes how many processes send it."""
    given = {key: value for key, value in (("concurrency", list(overrides.concurrency)), ("rate", list(overrides.rate)),
                                           ("sweep", overrides.sweep)) if value}  # fmt: skip
    if not given and overrides.arrivals is None and overrides.client_processes is None:
        return None
    load = scenario.load.model_dump(mode="json", exclude_defaults=True) if scenario.load else {}
    if given:
        load = {key: value for key, value in load.items() if key not in ("concurrency", "rate", "sweep")} | given
    if overrides.arrivals is not None:
        load["arrivals"] = overrides.arrivals
    if overrides.client_processes is not None:
        load["client_processes"] = overrides.client_processes
    return load


def backend_specs(kinds: Sequence[str], url: str | None) -> list[dict]:
    """Backends named on the command line; --url goes to the server backends among them."""
    return [{"kind": kind, "options": {"url": url} if url and kind in SERVER_KINDS else {}} for kind in kinds]


def set_backend_options(specs: list[dict], assignments: list[str]) -> list[dict]:
    """Apply ``NAME.KEY=VALUE`` assignments to backend specs; NAME is a backend's label or kind,
    VALUE is read as YAML (``true``, ``2``, ``transformers``)."""
    import yaml

    from benchbench.config.yaml_budget import safe_load

    specs = [{**spec, "options": dict(spec.get("options") or {})} for spec in specs]
    for assignment in assignments:
        target, _, value = assignment.partition("=")
        name, _, key = target.partition(".")
        if not (name and key and _):
            raise BenchError(f"--option {assignment}: write BACKEND.KEY=VALUE, e.g. openai.dialect=transformers")
        matches = [spec for spec in specs if name in (spec.get("label"), spec["kind"])]
        if not matches:
            known = ", ".join(spec.get("label") or spec["kind"] for spec in specs)
            raise BenchError(f"--option {assignment}: no backend named '{name}' in this run (backends: {known})")
        try:
            parsed = safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        for spec in matches:
            spec["options"][key] = parsed
    return specs
