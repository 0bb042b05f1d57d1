"""Does resource sampling disturb the timings? Throughput of the tiny model with and without it.

One loaded Transformers backend runs the scenario's measured requests through the runner's
``measure_request``, in rounds that alternate "sampler off" and "sampler on" (the worker's
``ResourceSampler`` at its default rate, around the whole round, as in a run). Reported: the
fastest round of each (as timeit does: other load on a shared machine only ever adds time) as
requests/s of wall time and as process CPU seconds (the sampler thread's own CPU included), and
the median of the paired round ratios, and the sampler thread's own CPU time as a share of the
sampled rounds' process CPU time: a load-independent bound on what it can take from CPU-bound
work. Target: <= 1%.

    flock /work/bench.lock python benchmarks/resource_sampler.py [--scenario 10x-image] [--rounds 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.execution.resources import DEFAULT_HZ, ResourceSampler  # noqa: E402
from benchbench.execution.runner import measure_request  # noqa: E402
from tiny_backend import warm_tiny_backend  # noqa: E402


def one_round(backend, requests, sampled: bool) -> tuple[float, float, int, float]:
    """(wall s, CPU s, samples, sampler CPU s) for every request once."""
    sampler = ResourceSampler("serve", enabled=sampled)
    wall, cpu = time.perf_counter(), time.process_time()
    with sampler:
        for request in requests:
            measure_request(backend, request, repeat=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (wall, cpu, sampler.usage.samples, sampler.usage.sampler_cpu_s) if sampled else (wall, cpu, 0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="10x-image")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    backend, workload = warm_tiny_backend(args.scenario)
    n = len(workload.measured)
    rounds = []
    for index in range(args.rounds):
        order = [False, True] if index % 2 == 0 else [True, False]
        rounds.append({sampled: one_round(backend, workload.measured, sampled) for sampled in order})
        off, on = rounds[-1][False], rounds[-1][True]
        print(f"round {index}: off {n / off[0]:.2f} req/s {off[1]:.3f} CPU s | "
              f"on {n / on[0]:.2f} req/s {on[1]:.3f} CPU s ({on[2]} samples)")
    best = {s: (min(r[s][0] for r in rounds), min(r[s][1] for r in rounds)) for s in (False, True)}
    wall_change = 100 * (best[False][0] / best[True][0] - 1)
    cpu_change = 100 * (best[True][1] / best[False][1] - 1)
    paired = 100 * (statistics.median(r[False][0] / r[True][0] for r in rounds) - 1)
    print(f"throughput, fastest round: off {n / best[False][0]:.2f} req/s, on {n / best[True][0]:.2f} req/s "
          f"({wall_change:+.2f}%; median paired round {paired:+.2f}%) at {DEFAULT_HZ:g} Hz")
    share = 100 * sum(r[True][3] for r in rounds) / sum(r[True][1] for r in rounds)
    print(f"process CPU, fastest round: off {best[False][1]:.3f} s, on {best[True][1]:.3f} s ({cpu_change:+.2f}%)")
    print(f"sampler thread's own CPU: {share:.2f}% of the sampled rounds' process CPU")
    sys.exit(0 if abs(paired) <= 1.0 and share <= 1.0 else 1)


if __name__ == "__main__":
    main()
