"""Gate rules as small check objects, from ``--rule`` text or a ``gates.yaml``.

    output_tok_s: -5%                 may drop by at most 5% (higher is better)
    ttft_s_p90: +10%                  may rise by at most 10% (lower is better)
    goodput_req_s@rate=4: -5%         a load run's metric at one load point (NAME@POINT)
    fairness: must_pass               every measured request of the run is fair
    consistency.exact_match: >= 0.99  share of requests whose output equals the baseline's
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchbench.config.yaml_budget import safe_load
from benchbench.errors import BenchError
from benchbench.files import read_text
from benchbench.results.metrics import Direction, at_point, direction, former_name_message, published_names, split_point

DEFAULT_REPEATS = 12
"""Repeats per run the default decision rule is designed for (benchmarks/gate_power.py, docs/ci.md)."""

FAIRNESS = "fairness"
CONSISTENCY_MEASURES = ("exact_match", "agreement", "edit_distance")
DEFAULT_RULES = ("output_tok_s: -5%", "ttft_s_p90: +10%", "fairness: must_pass")

_PERCENT = re.compile(r"^([+-]?)\s*(\d+(?:\.\d*)?)\s*%$")
_BOUND = re.compile(r"^(>=|<=)\s*(\d+(?:\.\d*)?)$")


@dataclass(frozen=True)
class RelativeCheck:
    """The run's metric may be worse than the baseline's by at most ``tolerance`` (a fraction)."""

    metric: str
    tolerance: float

    @property
    def key(self) -> str:
        return self.metric

    @property
    def point(self) -> str | None:
        """The load point the rule is about (``rate=4``), None for a serial run's metric."""
        return split_point(self.metric)[1]

    @property
    def direction(self) -> Direction:
        return direction(split_point(self.metric)[0])

    @property
    def text(self) -> str:
        sign = "-" if self.direction is Direction.HIGHER_IS_BETTER else "+"
        return f"{self.metric}: {sign}{self.tolerance * 100:g}%"


@dataclass(frozen=True)
class FairnessCheck:
    """Every measured request of the run ran the planned workload."""

    key = FAIRNESS
    text = f"{FAIRNESS}: must_pass"


@dataclass(frozen=True)
class ConsistencyCheck:
    """A consistency measure of the run's outputs against the baseline's, bounded from one side."""

    measure: str
    operator: str
    bound: float

    @property
    def key(self) -> str:
        return f"consistency.{self.measure}"

    @property
    def text(self) -> str:
        return f"{self.key}: {self.operator} {self.bound:g}"

    def holds(self, value: float) -> bool:
        return value >= self.bound if self.operator == ">=" else value <= self.bound


Check = RelativeCheck | FairnessCheck | ConsistencyCheck


def parse_rule(text: str) -> Check:
    """``NAME: SPEC`` as given to ``--rule``."""
    name, colon, spec = text.partition(":")
    if not colon:
        raise BenchError(f"rule {text!r}: write NAME: SPEC, e.g. 'output_tok_s: -5%' or 'fairness: must_pass'")
    return rule_from(name.strip(), spec.strip())


def rule_from(name: str, spec: str) -> Check:
    """One rule from its name and its spec (a YAML mapping entry or the two halves of ``--rule``)."""
    where = f"rule '{name}: {spec}'"
    if name == FAIRNESS:
        if spec != "must_pass":
            raise BenchError(f"{where}: fairness takes 'must_pass'")
        return FairnessCheck()
    if name.startswith("consistency."):
        return _consistency_rule(name.removeprefix("consistency."), spec, where)
    metrics = published_names()
    if name in metrics:
        return _relative_rule(name, spec, where)
    metric, point = split_point(name)
    metrics = published_names(load=True)
    if metric in metrics:
        if not point:
            raise BenchError(f"{where}: {metric} is measured per load point; name the point after '@', e.g. "
                             f"'{at_point(metric, 'rate=4')}: {spec}'")
        return _relative_rule(name, spec, where)
    name = metric  # an unknown metric, at a point or not: suggest by the metric's name
    renamed = former_name_message(name, f"{name}: {spec}")
    if renamed:
        raise BenchError(f"{where}: {renamed}")
    known = [*metrics, FAIRNESS, *(f"consistency.{m}" for m in CONSISTENCY_MEASURES)]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
    raise BenchError(f"{where}: unknown metric {name!r}; {hint}")


def _relative_rule(metric: str, spec: str, where: str) -> RelativeCheck:
    match = _PERCENT.match(spec)
    worse = "-" if direction(split_point(metric)[0]) is Direction.HIGHER_IS_BETTER else "+"
    if not match:
        raise BenchError(f"{where}: give a tolerance in percent, e.g. '{metric}: {worse}5%'")
    sign, number = match.groups()
    tolerance = float(number) / 100
    if tolerance and sign != worse:
        better = "higher" if worse == "-" else "lower"
        raise BenchError(f"{where}: {metric} is better {better}; the tolerance is how far it may get worse: "
                         f"write '{metric}: {worse}{number}%'")
    if worse == "-" and tolerance >= 1:
        raise BenchError(f"{where}: a drop of {number}% or more cannot be measured; use a tolerance below 100%")
    return RelativeCheck(metric, tolerance)


def _consistency_rule(measure: str, spec: str, where: str) -> ConsistencyCheck:
    if measure not in CONSISTENCY_MEASURES:
        close = difflib.get_close_matches(measure, CONSISTENCY_MEASURES, n=1)
        hint = f"did you mean consistency.{close[0]}?" if close else f"known: {', '.join(CONSISTENCY_MEASURES)}"
        raise BenchError(f"{where}: unknown consistency measure {measure!r}; {hint}")
    match = _BOUND.match(spec)
    if not match or float(match.group(2)) > 1:
        raise BenchError(f"{where}: give a bound between 0 and 1, e.g. 'consistency.{measure}: >= 0.99'")
    return ConsistencyCheck(measure, match.group(1), float(match.group(2)))


def merge_rules(*rule_sets: list[Check]) -> list[Check]:
    """Later sets win per metric (``--rule`` over ``gates.yaml``), first-seen order kept."""
    merged: dict[str, Check] = {}
    for rules in rule_sets:
        for check in rules:
            merged[check.key] = check
    return list(merged.values())


def default_rules() -> list[Check]:
    return [parse_rule(text) for text in DEFAULT_RULES]


class _GateFileSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: str | None = None
    repeats: int = Field(default=DEFAULT_REPEATS, ge=1, le=1000)
    allow_different_hardware: bool = False
    rules: dict[str, str | int | float] = Field(min_length=1)


@dataclass(frozen=True)
class GateFile:
    """A ``gates.yaml``: the baseline (relative to the file), repeats for ``run --gate``, the rules."""

    path: Path
    baseline: Path | None
    repeats: int
    allow_different_hardware: bool
    rules: list[Check]


def load_gate_file(path: Path) -> GateFile:
    path = Path(path)
    text = read_text(path, "gates file", "give a YAML file of gate rules (docs/ci.md)", limit=1024 * 1024)
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise BenchError(f"gates file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        schema = _GateFileSchema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise BenchError(f"gates file {path}: {field}: {first['msg']}") from None
    rules = []
    for name, spec in schema.rules.items():
        try:
            rules.append(rule_from(name, str(spec)))
        except BenchError as exc:
            raise BenchError(f"gates file {path}: {exc}") from None
    baseline = path.parent / schema.baseline if schema.baseline else None
    return GateFile(path, baseline, schema.repeats, schema.allow_different_hardware, rules)
