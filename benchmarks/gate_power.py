"""How often the gate's default throughput rule cries wolf, and how often it catches a real regression.

Each trial draws a baseline and a run of repeat-level ``output_tok_s`` samples with the given
run-to-run noise (coefficient of variation) and judges them with the gate's own code
(``benchbench.gate.judge.judge_relative``, the rule ``output_tok_s: -5%``). Reported: the false-alarm
rate when nothing changed and the detection rate of a 10% throughput drop, each with a 95%
Wilson interval. Targets: false alarms <= 1%, detection >= 95%; exit 1 if a target is missed.

    python benchmarks/gate_power.py [--repeats 12] [--cv 0.05] [--noise normal|lognormal|t5] [--trials 20000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.gate.baseline import BackendSnapshot  # noqa: E402
from benchbench.gate.judge import Status, judge_relative  # noqa: E402
from benchbench.gate.rules import DEFAULT_REPEATS, parse_rule  # noqa: E402

MAX_FALSE_ALARMS = 0.01
MIN_DETECTION = 0.95


def draw(rng: np.random.Generator, noise: str, mean: float, cv: float, size: int) -> np.ndarray:
    """Repeat-level samples with the given mean and coefficient of variation."""
    if noise == "normal":
        return rng.normal(mean, cv * mean, size)
    if noise == "lognormal":
        sigma = math.sqrt(math.log1p(cv**2))
        return mean * rng.lognormal(-sigma**2 / 2, sigma, size)
    # Student t with 5 degrees of freedom (heavier tails), scaled to the same standard deviation.
    return mean * (1 + cv * rng.standard_t(5, size) / math.sqrt(5 / 3))


def flagged_rate(args: argparse.Namespace, true_ratio: float, trials: int, seed: int) -> float:
    """Share of trials the gate calls a regression when the run's true mean is ``true_ratio`` x the baseline's."""
    rule = parse_rule(args.rule)
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(trials):
        snapshots = [
            BackendSnapshot(kind="simulated", status="ok", repeats=args.repeats, outputs={}, unfair_requests=0,
                            metrics={rule.metric: [float(v) for v in draw(rng, args.noise, mean, args.cv, args.repeats)]})
            for mean in (100.0, 100.0 * true_ratio)
        ]
        flagged += judge_relative(rule, "simulated", *snapshots).status is Status.REGRESSION
    return flagged / trials


def wilson(rate: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    centre = (rate + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="repeats per run [gate default]")
    parser.add_argument("--cv", type=float, default=0.05, help="run-to-run coefficient of variation")
    parser.add_argument("--noise", choices=["normal", "lognormal", "t5"], default="normal")
    parser.add_argument("--regression", type=float, default=0.10, help="true throughput drop to detect")
    parser.add_argument("--rule", default="output_tok_s: -5%", help="the rule judged [the default rule]")
    parser.add_argument("--trials", type=int, default=20000, help="trials for the false-alarm rate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    false_alarms = flagged_rate(args, 1.0, args.trials, args.seed)
    detection = flagged_rate(args, 1.0 - args.regression, args.trials // 4, args.seed + 1)
    ok_alarms, ok_detection = false_alarms <= MAX_FALSE_ALARMS, detection >= MIN_DETECTION
    print(f"rule '{args.rule}', {args.repeats} repeats per run, {args.noise} noise CV {args.cv:.0%}, "
          f"gate decision from benchbench.gate.judge ({time.perf_counter() - start:.0f} s)")
    for label, rate, trials, target, ok in (
        ("false alarms, no change", false_alarms, args.trials, f"<= {MAX_FALSE_ALARMS:.0%}", ok_alarms),
        (f"detection, {args.regression:.0%} drop", detection, args.trials // 4, f">= {MIN_DETECTION:.0%}", ok_detection),
    ):
        low, high = wilson(rate, trials)
        print(f"  {label:<26} {rate:7.2%}  95% CI [{low:.2%}, {high:.2%}]  over {trials} trials  "
              f"target {target}: {'met' if ok else 'MISSED'}")
    return 0 if ok_alarms and ok_detection else 1


if __name__ == "__main__":
    sys.exit(main())
