"""Sweep files: a base scenario, the models, fixed settings and axes, where to run, what is best.

Only the file's shape is checked here; what each axis name means and whether its values are
valid is the matrix's job (matrix.py), which knows scenarios and backends.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from benchbench.config.scenario import validate_mapping
from benchbench.config.yaml_budget import safe_load
from benchbench.errors import BenchError
from benchbench.results import metrics

CONSTRAINT = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def _metric_problem(name: str, usage: str) -> str | None:
    """Why an objective cannot name ``name`` (None if it can): the metric registry's published names, as
    in summary.csv and gate rules; a former name (``ttft_p99_s``) is refused naming the new one."""
    known = metrics.published_names(load=True)
    if name in known:
        return None
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else "use a column name of summary.csv, e.g. ttft_s_p99"
    return metrics.former_name_message(name, usage) or f"unknown metric '{name}'; {hint}"


class SweepError(BenchError):
    """A sweep file, its axes or its executor settings are invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySettings(_Strict):
    address: str | None = Field(default=None, description="cluster address; default RAY_ADDRESS, else a local instance")
    num_cpus: float = Field(default=1, gt=0, description="CPUs each cell reserves")


class Resources(_Strict):
    gpus: int | None = Field(default=None, ge=0, description="GPUs every cell reserves; default: from the cell")


class Objective(_Strict):
    """Which cell is best per engine: maximise or minimise one metric, among cells meeting every constraint."""

    maximize: str | None = None
    minimize: str | None = None
    subject_to: list[str] = Field(default_factory=list, description='e.g. "ttft_s_p99 <= 0.5"')

    @field_validator("maximize", "minimize")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        problem = None if value is None else _metric_problem(value, value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("subject_to")
    @classmethod
    def _constraints_parse(cls, values: list[str]) -> list[str]:
        for text in values:
            match = CONSTRAINT.match(text)
            if not match:
                raise ValueError(f"constraint '{text}': write METRIC <= NUMBER, e.g. 'ttft_s_p99 <= 0.5'")
            problem = _metric_problem(match.group(1), text.strip())
            if problem:
                raise ValueError(f"constraint '{text}': {problem}")
        return values

    @property
    def metric(self) -> str:
        return self.maximize or self.minimize or "output_tok_s"

    @property
    def higher_is_better(self) -> bool:
        return self.minimize is None

    def constraints(self) -> list[tuple[str, str, float]]:
        return [(m.group(1), m.group(2), float(m.group(3))) for m in map(CONSTRAINT.match, self.subject_to)]

    def describe(self) -> str:
        goal = f"{'highest' if self.higher_is_better else 'lowest'} {self.metric}"
        return goal + (f" with {' and '.join(self.subject_to)}" if self.subject_to else "") + ", among fair finished cells"


class SweepSpec(_Strict):
    scenario: str = Field(min_length=1, description="built-in scenario name, or a YAML path relative to the sweep file")
    model: str | list[str] | None = Field(default=None, description="checkpoint folder(s); omitted: the embedded tiny InternVL")
    set: dict[str, Any] = Field(default_factory=dict, description="settings fixed for every cell, named like axes")
    axes: dict[str, list[Any]]
    executor: Literal["local", "ray"] = "local"
    device: Literal["cpu", "cuda"] | None = None
    trust_remote_code: bool = False
    cell_timeout_s: float | None = Field(default=None, gt=0)
    resources: Resources = Resources()
    ray: RaySettings = RaySettings()
    objective: Objective = Objective()

    @property
    def models(self) -> list[str | None]:
        if isinstance(self.model, list):
            return list(self.model)
        return [self.model]


def parse_sweep(data: Any, source: str) -> SweepSpec:
    return validate_mapping(SweepSpec, data, f"sweep {source}", SweepError)


def load_sweep(path: Path) -> tuple[SweepSpec, str]:
    """The sweep file, validated, and its text (kept in the sweep folder); the scenario path made absolute."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = safe_load(text)  # aliases within a budget, as in scenario files
    except FileNotFoundError:
        raise SweepError(f"sweep file {path}: not found; check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SweepError(f"sweep file {path}: malformed YAML{where}; fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"sweep file {path}: cannot read ({exc}); check the file") from None
    spec = parse_sweep(data, source=f"file {path}")
    relative = path.parent / spec.scenario
    if relative.is_file():
        spec = spec.model_copy(update={"scenario": str(relative.resolve())})
    return spec, text


def stored_spec(data: dict[str, Any]) -> SweepSpec:
    """A sweep folder's own spec (sweep.json), its objective's former metric names renamed, so a folder
    written before the registry's names still reports and resumes; a sweep file is refused instead."""
    objective = dict(data.get("objective") or {})
    for goal in ("maximize", "minimize"):
        if objective.get(goal) in metrics.FORMER_NAMES:
            objective[goal] = metrics.FORMER_NAMES[objective[goal]]
    objective["subject_to"] = [_renamed_constraint(text) for text in objective.get("subject_to", [])]
    return SweepSpec.model_validate({**data, "objective": objective})


def _renamed_constraint(text: str) -> str:
    match = CONSTRAINT.match(text)
    name = match.group(1) if match else None
    return text.replace(name, metrics.FORMER_NAMES[name], 1) if name in metrics.FORMER_NAMES else text
