"""Harness overhead as a user sees it: wall-clock throughput of a real run vs a bare loop.

A harness round is ``benchbench.run`` (CLI's path: worker process, clock, recorder, event stream,
parent, run folder) on the tiny model; its throughput is the summary's: measured requests over
the span from the first request's start to the last one's end. A bare round calls the same
model's ``generate`` on the same preprocessed inputs in a plain loop, timed by the wall clock.
Rounds alternate (harness first in even rounds) so drift on a shared machine hits both. The
per-request harness gap is read from the records: the next request's start minus this one's end.

Targets: overhead <= 1% (median of the paired round ratios), gap <= 0.2 ms (median).

    flock /work/bench.lock python benchmarks/overhead.py [--requests 20] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchbench  # noqa: E402
from benchbench.backends.base import BackendContext  # noqa: E402
from benchbench.backends.transformers import TransformersBackend, TransformersOptions  # noqa: E402
from benchbench.config.overrides import apply_overrides  # noqa: E402
from benchbench.config.scenario import load_scenario  # noqa: E402
from benchbench.models.tiny import ensure_tiny_model  # noqa: E402
from benchbench.results.records import read_records  # noqa: E402
from benchbench.workload.build import build_workload  # noqa: E402

TARGET_OVERHEAD_PCT, TARGET_GAP_MS = 1.0, 0.2


def harness_round(scenario: str, options: benchbench.RunOptions, run_dir: Path) -> tuple[float, list[float]]:
    """(requests per second, gaps between consecutive requests in s) of one real run."""
    result = benchbench.run(scenario, replace(options, output_dir=run_dir))
    assert result.ok, result.manifest.backends[0].error
    measured = [r for r in read_records(run_dir) if r.phase == "measure"]
    ends = [r.started_at + r.e2e_s for r in measured]
    gaps = [after.started_at - end for end, after in zip(ends, measured[1:])]
    return len(measured) / (ends[-1] - measured[0].started_at), gaps


def bare_round(backend: TransformersBackend, requests) -> float:
    """Requests per second of preprocessing + generate on every request, nothing around it."""
    import torch

    start = time.perf_counter()
    for request in requests:
        prepared = backend.prepare(request)
        with torch.inference_mode():
            backend.model.generate(
                input_ids=prepared.input_ids, attention_mask=prepared.attention_mask,
                pixel_values=prepared.pixel_values, max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.max_new_tokens, do_sample=False, num_beams=1,
                eos_token_id=backend.eos_token_id, pad_token_id=backend.tokenizer.pad_token_id,
            )
    return len(requests) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="10x-image")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    options = benchbench.RunOptions(requests=args.requests, warmup=1, backends=("transformers",), device="cpu",
                                    command=["benchmarks/overhead.py"])
    workload = build_workload(apply_overrides(load_scenario(args.scenario), options))
    backend = TransformersBackend(TransformersOptions(), BackendContext("transformers", ensure_tiny_model(), "auto", "cpu", Path("."), 0))
    backend.load()
    bare_round(backend, workload.warmup)
    rounds, gaps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            order = ["harness", "bare"] if index % 2 == 0 else ["bare", "harness"]
            throughput = {}
            for name in order:
                if name == "bare":
                    throughput[name] = bare_round(backend, workload.measured)
                else:
                    throughput[name], round_gaps = harness_round(args.scenario, options, Path(tmp) / f"round-{index}")
                    gaps += round_gaps
            rounds.append(throughput)
            print(f"round {index}: bare {throughput['bare']:.3f} req/s, harness {throughput['harness']:.3f} req/s "
                  f"({100 * (throughput['bare'] / throughput['harness'] - 1):+.2f}%)", flush=True)
    paired = 100 * (statistics.median(r["bare"] / r["harness"] for r in rounds) - 1)
    best = 100 * (max(r["bare"] for r in rounds) / max(r["harness"] for r in rounds) - 1)
    gap_ms = 1000 * statistics.median(gaps)
    p90_ms = 1000 * statistics.quantiles(gaps, n=10)[-1]
    print(f"harness overhead: {paired:+.2f}% (median paired round; fastest rounds {best:+.2f}%) — target <= {TARGET_OVERHEAD_PCT:g}%")
    print(f"per-request harness gap: median {gap_ms:.3f} ms, p90 {p90_ms:.3f} ms over {len(gaps)} gaps — target <= {TARGET_GAP_MS:g} ms")
    sys.exit(0 if paired <= TARGET_OVERHEAD_PCT and gap_ms <= TARGET_GAP_MS else 1)


if __name__ == "__main__":
    main()
