"""How often benchbench's bootstrap intervals hold the true value: measured coverage at nominal 95%.

Each trial draws samples from a skewed, latency-like distribution with a known mean, builds the
interval with benchbench's own functions (``bootstrap_mean_ci``, and ``bootstrap_ratio_ci`` for a
candidate whose true mean is 1.3x the baseline's) and checks that it holds the truth. Target:
coverage >= 94.5% at n = 10 and n = 30 on the target distributions; exit 1 if one is missed.
lognormal sigma 0.5 (skewness 1.75) and n = 3 are reported, not targets. ``--compare``
adds scipy.stats.bootstrap's percentile and BCa intervals on the same samples.

    python benchmarks/bootstrap_coverage.py [--trials 4000] [--resamples 4000] [--compare]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.results.stats import DEFAULT_RESAMPLES, bootstrap_mean_ci, bootstrap_ratio_ci  # noqa: E402
from gate_power import wilson  # noqa: E402

CONFIDENCE = 0.95
TARGET = 0.945
TRUE_RATIO = 1.3
SIZES = (3, 10, 30)
TARGET_SIZES = (10, 30)
"""n = 3 is shown, not a target: there benchbench uses Student's t (results/stats.py, SMALL_SAMPLE)."""
DISTRIBUTIONS = {
    # name: (draw with mean 1, skewness, is a target)
    "gamma k=4": (lambda rng, size: rng.gamma(4.0, 0.25, size), 1.0, True),
    "lognormal sigma=0.25": (lambda rng, size: rng.lognormal(-0.25**2 / 2, 0.25, size), 0.78, True),
    "lognormal sigma=0.5": (lambda rng, size: rng.lognormal(-0.5**2 / 2, 0.5, size), 1.75, False),
}


def draws(name: str, size: int, trials: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, candidate) samples per trial: baseline mean 1, candidate mean TRUE_RATIO."""
    draw = DISTRIBUTIONS[name][0]
    rng = np.random.default_rng(seed)
    return draw(rng, (trials, size)), TRUE_RATIO * draw(rng, (trials, size))


def benchbench_coverage(baseline: np.ndarray, candidate: np.ndarray, resamples: int) -> tuple[float, float]:
    """Shares of trials whose interval holds the true mean (1) and the true ratio."""
    means = ratios = 0
    for trial, (base, cand) in enumerate(zip(baseline, candidate)):
        means += bootstrap_mean_ci(base, confidence=CONFIDENCE, resamples=resamples, seed=trial).contains(1.0)
        ratio = bootstrap_ratio_ci(base, cand, confidence=CONFIDENCE, resamples=resamples, seed=trial)
        ratios += ratio.contains(TRUE_RATIO)
    return means / len(baseline), ratios / len(baseline)


def scipy_coverage(baseline: np.ndarray, candidate: np.ndarray, resamples: int, method: str) -> tuple[float, float]:
    """The same, with scipy.stats.bootstrap (every trial at once along the first axis)."""
    from scipy.stats import bootstrap

    options = dict(method=method, confidence_level=CONFIDENCE, n_resamples=resamples, vectorized=True,
                   axis=-1, batch=100, rng=np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean = bootstrap((baseline,), lambda x, axis: x.mean(axis=axis), **options).confidence_interval
        ratio = bootstrap((baseline, candidate), lambda b, c, axis: c.mean(axis=axis) / b.mean(axis=axis),
                          **options).confidence_interval
    return (float(np.mean((mean.low <= 1.0) & (1.0 <= mean.high))),
            float(np.mean((ratio.low <= TRUE_RATIO) & (TRUE_RATIO <= ratio.high))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", action="store_true", help="also scipy's percentile and BCa intervals")
    args = parser.parse_args()

    methods = ["benchbench"] + (["scipy percentile", "scipy BCa"] if args.compare else [])
    print(f"coverage at nominal {CONFIDENCE:.0%}, {args.trials} trials, {args.resamples} resamples; "
          f"ratio: candidate mean {TRUE_RATIO}x baseline mean, both n samples; target >= {TARGET:.1%}; "
          "benchbench: symmetric bootstrap-t from 10 samples, Student's t below")
    print(f"{'distribution':<22} {'skew':>5} {'n':>3}  {'method':<25} {'mean':>24} {'ratio of means':>24}")
    missed = []
    for index, (name, (_, skewness, target)) in enumerate(DISTRIBUTIONS.items()):
        for size in SIZES:
            baseline, candidate = draws(name, size, args.trials, args.seed + 100 * index + size)
            for method in methods:
                start = time.perf_counter()
                if method.startswith("benchbench"):
                    rates = benchbench_coverage(baseline, candidate, args.resamples)
                else:
                    rates = scipy_coverage(baseline, candidate, args.resamples, method.split()[-1])
                cells = []
                for rate in rates:
                    low, high = wilson(rate, args.trials)
                    cells.append(f"{rate:7.2%} [{low:.1%}, {high:.1%}]")
                flag = ""
                if not target or size not in TARGET_SIZES:
                    flag = "  (not a target)"
                elif method.startswith("benchbench") and min(rates) < TARGET:
                    flag = "  MISSED"
                    missed.append(f"{name} n={size}")
                print(f"{name:<22} {skewness:5.2f} {size:3d}  {method:<25} {cells[0]:>24} {cells[1]:>24}"
                      f"{flag}  ({time.perf_counter() - start:.0f} s)", flush=True)
    print("target met" if not missed else f"target missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
