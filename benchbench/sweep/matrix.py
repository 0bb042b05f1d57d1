"""Sweep axes → cells: every combination of axis values, validated before anything runs.

An axis is named like the thing it sets: ``backend`` (the cell's one backend), a scenario field
(``max_new_tokens``, ``tiling.max_num``), or a backend option ``KIND.OPTION`` (``lmdeploy.tp``),
which applies only to cells that run that backend. A combination whose only difference from an
earlier one is an axis that does not apply is the same cell; it is listed as skipped.
"""

from __future__ import annotations

import difflib
import itertools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from benchbench.backends.base import parse_options
from benchbench.backends.registry import BACKENDS, backend_class
from benchbench.config.scenario import BackendSpec, Scenario, load_scenario, parse_scenario
from benchbench.errors import BenchError
from benchbench.sweep.cells import Cell, cell_gpus
from benchbench.sweep.spec import SweepError, SweepSpec
from benchbench.workload.build import build_workload

BACKEND_AXIS = "backend"
NOT_AXES = {"name", "description", "backends"}
SCENARIO_AXES = [name for name in Scenario.model_fields if name not in NOT_AXES]


@dataclass(frozen=True)
class Skipped:
    combination: dict[str, Any]
    same_as: str
    reason: str


@dataclass(frozen=True)
class Plan:
    cells: list[Cell]
    skipped: list[Skipped]


def expand(spec: SweepSpec) -> Plan:
    """Every cell of the sweep, each validated as a scenario with valid backend options."""
    base = load_scenario(spec.scenario).model_dump(mode="json")
    _check_names(spec, base)
    axes = list(spec.axes.items())
    cells: dict[tuple, Cell] = {}
    skipped: list[Skipped] = []
    varying = {name for name, values in axes if len(values) > 1} | ({"model"} if len(spec.models) > 1 else set())
    for model in spec.models:
        for values in itertools.product(*(values for _, values in axes)):
            combination = dict(zip((name for name, _ in axes), values))
            data = _apply(base, {**spec.set, **combination})
            applied = {name: value for name, value in combination.items() if _applies(name, data)}
            key = (model, repr(sorted(applied.items(), key=lambda item: item[0])))
            shown = {**({"model": model} if len(spec.models) > 1 else {}), **combination}
            if key in cells:
                unused = [name for name in combination if name not in applied]
                skipped.append(Skipped(shown, cells[key].id, f"{', '.join(unused)} does not apply to {_backends(data)}"))
                continue
            assignments = {**({"model": model} if len(spec.models) > 1 else {}), **applied}
            cells[key] = _cell(spec, len(cells), assignments, varying, model, data)
    _check_every_axis_applies(spec, cells.values())
    numbered = _numbered(list(cells.values()))
    return Plan(numbered, [Skipped(s.combination, numbered[int(s.same_as)].id, s.reason) for s in skipped])


def _check_names(spec: SweepSpec, base: dict) -> None:
    """Every axis and fixed setting names something a cell can set; every axis has distinct values."""
    if not spec.axes:
        raise SweepError("sweep: 'axes' is empty, so there is nothing to sweep; add an axis such as 'max_new_tokens: [16, 64]'")
    for name, values in spec.axes.items():
        if not values:
            raise SweepError(f"sweep axis '{name}': no values; list at least one, e.g. '{name}: [...]'")
        if len({repr(value) for value in values}) != len(values):
            raise SweepError(f"sweep axis '{name}': a value repeats; list each value once")
    labels = {spec_["label"] or spec_["kind"] for spec_ in base["backends"]}
    for value in spec.axes.get(BACKEND_AXIS, []) + ([spec.set[BACKEND_AXIS]] if BACKEND_AXIS in spec.set else []):
        labels.add(_backend_spec(value).name)
    for name in [*spec.set, *spec.axes]:
        _check_name(name, base, labels)


def _check_name(name: str, base: dict, labels: set[str]) -> None:
    if name == BACKEND_AXIS:
        return
    head, _, rest = name.partition(".")
    if head in SCENARIO_AXES:
        _check_field_path(name, Scenario, name.split("."))
        return
    if rest and (head in BACKENDS or head in labels):
        kind = head if head in BACKENDS else _kind_of_label(head, base)
        options = backend_class(kind).Options.model_fields
        if rest not in options:
            raise SweepError(f"sweep axis '{name}': {kind} has no option '{rest}'{_did_you_mean(rest, options)}"
                             f" (options: {', '.join(options)})")
        return
    known = [BACKEND_AXIS, *SCENARIO_AXES, *(f"{kind}.OPTION" for kind in BACKENDS)]
    raise SweepError(f"sweep axis '{name}': unknown{_did_you_mean(name, [BACKEND_AXIS, *SCENARIO_AXES])}; name "
                     f"'backend', a scenario field or BACKEND.OPTION ({', '.join(known)})")


def _check_field_path(name: str, model: type[BaseModel], parts: list[str]) -> None:
    """A dotted scenario path whose every segment is a field of the nested settings model."""
    fields = model.model_fields
    if parts[0] not in fields:
        raise SweepError(f"sweep axis '{name}': no scenario field '{parts[0]}'{_did_you_mean(parts[0], fields)}")
    if len(parts) > 1:
        nested = next((arg for arg in (fields[parts[0]].annotation, *typing.get_args(fields[parts[0]].annotation))
                       if isinstance(arg, type) and issubclass(arg, BaseModel)), None)
        if nested is None:
            raise SweepError(f"sweep axis '{name}': scenario field '{parts[0]}' has no sub-fields; name '{parts[0]}' itself")
        _check_field_path(name, nested, parts[1:])


def _kind_of_label(label: str, base: dict) -> str:
    return next(spec["kind"] for spec in base["backends"] if spec["label"] == label)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _backend_spec(value: Any) -> BackendSpec:
    """An axis value for ``backend``: a kind, or a mapping with kind, label and options."""
    try:
        return BackendSpec.model_validate({"kind": value} if isinstance(value, str) else value)
    except ValidationError:
        raise SweepError(f"sweep axis 'backend': value {value!r} is neither a backend kind nor "
                         "a mapping {kind, label, options}") from None


def _apply(base: dict, settings: dict[str, Any]) -> dict:
    """The scenario data with the settings applied: backend first, then fields and options in order."""
    data = _copy(base)
    if BACKEND_AXIS in settings:
        data["backends"] = [_backend_spec(settings[BACKEND_AXIS]).model_dump(mode="json")]
    for name, value in settings.items():
        head, _, rest = name.partition(".")
        if name == BACKEND_AXIS:
            continue
        if head in SCENARIO_AXES:
            _set_path(data, name.split("."), value)
        else:
            for backend in data["backends"]:
                if head in (backend["kind"], backend["label"]):
                    backend["options"][rest] = value
    return data


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_copy(value) for value in data]
    return data


def _set_path(data: dict, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[parts[-1]] = value


def _applies(name: str, data: dict) -> bool:
    head = name.partition(".")[0]
    if name == BACKEND_AXIS or head in SCENARIO_AXES:
        return True
    return any(head in (backend["kind"], backend["label"]) for backend in data["backends"])


def _backends(data: dict) -> str:
    return "backend " + ", ".join(backend["label"] or backend["kind"] for backend in data["backends"])


def _cell(spec: SweepSpec, index: int, assignments: dict, varying: set[str], model: str | None, data: dict) -> Cell:
    where = ", ".join(f"{name}={value}" for name, value in assignments.items()) or "the base scenario"
    try:
        scenario = parse_scenario(data, source=f"sweep cell {where}")
        for backend in scenario.backends:
            parse_options(backend_class(backend.kind), backend.options, backend.name)
        workload_hash = build_workload(scenario).hash
    except BenchError as exc:
        raise SweepError(f"sweep cell {where}: {exc}") from None
    shown = {name: value for name, value in assignments.items() if name in varying}
    return Cell(
        id=str(index), assignments=assignments, label=_slug(shown), scenario=scenario.model_dump(mode="json"),
        model=model, device=spec.device, trust_remote_code=spec.trust_remote_code,
        gpus=spec.resources.gpus if spec.resources.gpus is not None else cell_gpus(scenario, spec.device),
        cpus=spec.ray.num_cpus, timeout_s=spec.cell_timeout_s, workload_hash=workload_hash,
    )


def _slug(assignments: dict[str, Any]) -> str:
    parts = []
    for name, value in assignments.items():
        if name == "model" and isinstance(value, str):
            value = Path(value).name
        elif name == BACKEND_AXIS:
            value = _backend_spec(value).name
        parts.append(f"{name.rpartition('.')[2]}={value}")
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", "-".join(parts))[:80]


def _numbered(cells: list[Cell]) -> list[Cell]:
    """Cell ids ``03-max_num=6-max_new_tokens=8``: sortable, readable, and unique by their number."""
    width = len(str(len(cells)))
    return [cell.model_copy(update={"id": "-".join(filter(None, [f"{int(cell.id) + 1:0{width}d}", cell.label]))})
            for cell in cells]


def _check_every_axis_applies(spec: SweepSpec, cells) -> None:
    for name in spec.axes:
        if not any(name in cell.assignments for cell in cells):
            raise SweepError(f"sweep axis '{name}': applies to no cell (no cell runs backend '{name.partition('.')[0]}'); "
                             "add that backend to the 'backend' axis or remove the axis")
