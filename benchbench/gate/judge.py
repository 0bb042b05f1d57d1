"""Baseline vs run: a verdict per backend and rule, with its reason. Pure functions, no I/O.

A relative rule (``output_tok_s: -5%``) is decided on the repeat-level samples: the 99% bootstrap-t
interval (``results/stats.py``) of mean(run) / mean(baseline). It is a regression only when the whole interval
lies on the worse side of 1 (the change is real) and the estimate is beyond the tolerance (the
change matters). benchmarks/gate_power.py measures what this gives at 5% run-to-run noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from benchbench.gate.baseline import BackendSnapshot, Output, Snapshot
from benchbench.gate.rules import DEFAULT_REPEATS, Check, ConsistencyCheck, FairnessCheck, RelativeCheck
from benchbench.results.consistency import SequenceComparison, compare_sequences
from benchbench.errors import BenchError
from benchbench.results.metrics import Direction, at_point
from benchbench.results.stats import DEFAULT_RESAMPLES, MIN_REPEATS, Interval, bootstrap_ratio_ci

CONFIDENCE = 0.99
SEED = 0
DIRECT_METHOD = "fairness and consistency rules are checked directly on the run's records"
METHOD = (f"{CONFIDENCE:.0%} bootstrap-t CI ({DEFAULT_RESAMPLES} resamples, seed {SEED}) of the ratio "
          "mean(run) / mean(baseline) over repeat-level samples; a regression needs the whole CI on the worse "
          "side of 1 and the estimate beyond the tolerance")
HARDWARE_KEYS = ("cpu", "cpu_count", "gpus")


class Status(str, Enum):
    PASS = "pass"
    REGRESSION = "regression"
    CANNOT_JUDGE = "cannot judge"


@dataclass(frozen=True)
class Verdict:
    backend: str
    rule: str
    status: Status
    reason: str
    baseline: float | None = None
    current: float | None = None
    ratio: Interval | None = None


@dataclass(frozen=True)
class GateResult:
    verdicts: tuple[Verdict, ...]
    notes: tuple[str, ...]
    method: str = METHOD

    @property
    def exit_code(self) -> int:
        """0 pass, 1 any regression, 2 nothing regressed but something could not be judged."""
        statuses = {verdict.status for verdict in self.verdicts}
        if Status.REGRESSION in statuses:
            return 1
        return 2 if Status.CANNOT_JUDGE in statuses or not self.verdicts else 0


def evaluate(baseline: Snapshot, run: Snapshot, rules: Sequence[Check], allow_different_hardware: bool = False) -> GateResult:
    """Every rule for every backend of the baseline, judged against the run; a rule on a load point
    neither run has is refused (BenchError) rather than judged."""
    check_points(rules, baseline, run)
    hardware = hardware_differences(baseline.environment, run.environment)
    timing_block = None
    if hardware and not allow_different_hardware:
        timing_block = "hardware differs from the baseline's; gate on the same machine or allow different hardware"
    verdicts = []
    for name, base in baseline.backends.items():
        current = run.backends.get(name)
        blocked = _workload_block(baseline, run) or _backend_block(name, current)
        for rule in rules:
            reason = blocked or (timing_block if isinstance(rule, RelativeCheck) else None)
            verdict = Verdict(name, rule.text, Status.CANNOT_JUDGE, reason) if reason else judge(rule, name, base, current)
            verdicts.append(verdict)
    notes = [f"hardware differs: {d}" for d in hardware]
    notes += _other_differences(baseline, run) + _repeats_note(baseline, run, rules)
    statistical = any(isinstance(rule, RelativeCheck) for rule in rules)
    return GateResult(tuple(verdicts), tuple(notes), METHOD if statistical else DIRECT_METHOD)


def check_points(rules: Sequence[Check], baseline: Snapshot, run: Snapshot) -> None:
    """A timing rule must match how both runs were measured: ``NAME@POINT`` at a point each has,
    a plain name only where the runs have no load points."""
    for rule in rules:
        if not isinstance(rule, RelativeCheck):
            continue
        for side, snap in (("run", run), ("baseline", baseline)):
            points = list(dict.fromkeys(p for backend in snap.backends.values() for p in backend.points))
            if rule.point is None and points:
                raise BenchError(f"rule '{rule.text}': the {side} {snap.source} measured load points; gate one, e.g. "
                                 f"'{at_point(rule.metric, points[0])}' (points: {', '.join(points)})")
            if rule.point is not None and rule.point not in points:
                have = f"its points are {', '.join(points)}" if points else "it has no load points (a serial run)"
                raise BenchError(f"rule '{rule.text}': the {side} {snap.source} has no load point {rule.point!r}; {have}")


def judge(rule: Check, name: str, base: BackendSnapshot, current: BackendSnapshot) -> Verdict:
    if isinstance(rule, RelativeCheck):
        return judge_relative(rule, name, base, current)
    if isinstance(rule, FairnessCheck):
        return judge_fairness(rule, name, current)
    return judge_consistency(rule, name, base, current)


def judge_relative(rule: RelativeCheck, name: str, base: BackendSnapshot, current: BackendSnapshot) -> Verdict:
    """The bootstrap-CI decision on one metric's repeat-level samples."""
    before, after = base.metrics.get(rule.metric), current.metrics.get(rule.metric)

    def cannot(reason: str) -> Verdict:
        return Verdict(name, rule.text, Status.CANNOT_JUDGE, reason)

    if before is None or after is None:
        side = "baseline" if before is None else "run"
        return cannot(f"the {side} has no {rule.metric} samples (the engine does not report that timing)")
    if min(len(before), len(after)) < MIN_REPEATS:
        return cannot(f"too few repeats: baseline {len(before)}, run {len(after)}; need at least {MIN_REPEATS} "
                      f"({DEFAULT_REPEATS} recommended, --repeats {DEFAULT_REPEATS})")
    if not all(math.isfinite(v) and v > 0 for v in (*before, *after)):
        return cannot(f"{rule.metric} has zero or non-finite samples; a ratio is undefined")
    ratio = bootstrap_ratio_ci(before, after, confidence=CONFIDENCE, resamples=DEFAULT_RESAMPLES, seed=SEED)
    status, why = decide(ratio, rule.direction, rule.tolerance)
    mean_before, mean_after = sum(before) / len(before), sum(after) / len(after)
    reason = f"{format_change(ratio)} ({len(before)} vs {len(after)} repeats): {why}"
    return Verdict(name, rule.text, status, reason, mean_before, mean_after, ratio)


def decide(ratio: Interval, direction: Direction, tolerance: float) -> tuple[Status, str]:
    """Regression only when the change is both real (CI excludes 1 on the worse side) and beyond tolerance."""
    higher_better = direction is Direction.HIGHER_IS_BETTER
    worse_for_sure = ratio.high < 1 if higher_better else ratio.low > 1
    better_for_sure = ratio.low > 1 if higher_better else ratio.high < 1
    limit = 1 - tolerance if higher_better else 1 + tolerance
    beyond = ratio.estimate < limit if higher_better else ratio.estimate > limit
    allowed = f"{(limit - 1) * 100:+g}%"
    if worse_for_sure and beyond:
        return Status.REGRESSION, f"worse beyond the {allowed} tolerance"
    if worse_for_sure:
        return Status.PASS, f"worse, but within the {allowed} tolerance"
    if better_for_sure:
        return Status.PASS, "better"
    if beyond:
        return Status.PASS, f"estimate beyond {allowed} but the CI includes no change (too noisy to call)"
    return Status.PASS, "no significant change"


def format_change(ratio: Interval) -> str:
    """``-12.1% [-15.0%, -9.2%]``: the ratio as a relative change with its CI."""
    return (f"{(ratio.estimate - 1) * 100:+.1f}% [{(ratio.low - 1) * 100:+.1f}%, {(ratio.high - 1) * 100:+.1f}%]"
            f" {ratio.confidence:.0%} CI")


def judge_fairness(rule: FairnessCheck, name: str, current: BackendSnapshot) -> Verdict:
    if current.unfair_requests:
        first = f"; first: {current.violations[0]}" if current.violations else ""
        return Verdict(name, rule.text, Status.REGRESSION, f"{current.unfair_requests} unfair measured request(s){first}")
    return Verdict(name, rule.text, Status.PASS, "every measured request ran the planned workload")


def judge_consistency(rule: ConsistencyCheck, name: str, base: BackendSnapshot, current: BackendSnapshot) -> Verdict:
    """The run's outputs against the baseline's first output per request; a request counts by its worst output."""
    compared = {}
    for request_id, reference in base.outputs.items():
        answers = current.outputs.get(request_id)
        if answers:
            comparisons = [compare_outputs(reference[0], answer) for answer in answers]
            compared[request_id] = max(comparisons, key=lambda c: c.edit_distance)
    if not compared:
        return Verdict(name, rule.text, Status.CANNOT_JUDGE, "the run answered none of the baseline's requests")
    value = sum(float(getattr(c, rule.measure)) for c in compared.values()) / len(compared)
    differing = {rid: c for rid, c in compared.items() if not c.exact_match}
    detail = f"{len(differing)} of {len(compared)} requests differ from the baseline"
    if differing:
        rid, first = next(iter(differing.items()))
        detail += f" (first: {rid}, from position {first.first_divergence})"
    status = Status.PASS if rule.holds(value) else Status.REGRESSION
    comparison = "meets" if status is Status.PASS else "misses"
    return Verdict(name, rule.text, status, f"{value:.3g} {comparison} {rule.operator} {rule.bound:g}; {detail}",
                   current=value)


def compare_outputs(a: Output, b: Output) -> SequenceComparison:
    """Over token ids when both have them, else over text."""
    if a.token_ids is not None and b.token_ids is not None:
        return compare_sequences(a.token_ids, b.token_ids)
    return compare_sequences(a.text, b.text)


def hardware_differences(before: dict, after: dict) -> list[str]:
    """What makes timings incomparable: CPU model, core count, GPU models."""
    differences = []
    for key in HARDWARE_KEYS:
        old, new = before.get(key), after.get(key)
        if key == "gpus":
            old, new = [g.get("name") for g in old or []], [g.get("name") for g in new or []]
        if old != new:
            differences.append(f"{key} {old} -> {new}")
    return differences


def _other_differences(baseline: Snapshot, run: Snapshot) -> list[str]:
    notes = []
    old, new = baseline.environment.get("packages", {}), run.environment.get("packages", {})
    for package in sorted(old.keys() | new.keys()):
        if old.get(package) != new.get(package):
            notes.append(f"package {package} {old.get(package)} -> {new.get(package)}")
    if baseline.model.get("weights") != run.model.get("weights"):
        notes.append("model weights differ from the baseline's")
    notes += [f"backend {name} is in the run but not in the baseline; not gated"
              for name in run.backends if name not in baseline.backends]
    return notes


def _repeats_note(baseline: Snapshot, run: Snapshot, rules: Sequence[Check]) -> list[str]:
    counts = [b.repeats for snap in (baseline, run) for b in snap.backends.values() if b.repeats]
    fewest = min(counts, default=0)
    if not any(isinstance(rule, RelativeCheck) for rule in rules) or not MIN_REPEATS <= fewest < DEFAULT_REPEATS:
        return []
    return [f"{fewest} repeats: the decision rule is calibrated for {DEFAULT_REPEATS} (<= 1% false alarms, >= 95% "
            "of 10% drops caught at 5% noise); with fewer, real slowdowns are caught far less often "
            "(benchmarks/gate_power.py)"]


def _workload_block(baseline: Snapshot, run: Snapshot) -> str | None:
    if baseline.workload_hash == run.workload_hash:
        return None
    return (f"different workload: baseline {baseline.workload_hash[:16]} ({baseline.scenario}), run "
            f"{run.workload_hash[:16]} ({run.scenario}); run the baseline's scenario or save a new baseline")


def _backend_block(name: str, current: BackendSnapshot | None) -> str | None:
    if current is None:
        return f"backend {name} is in the baseline but missing from the run"
    if current.status != "ok":
        return f"backend {name} did not finish in the run ({current.status}: {current.error})"
    return None
