"""Harness overhead: the runner's measured throughput vs a bare loop over the same model and inputs.

Both loops preprocess every request and call ``model.generate`` with the same arguments; the
runner adds its streamer callback, clock reads, fairness check and record building. Rounds
alternate the two loops so drift on a shared machine hits both. The headline is the ratio of
the fastest round of each loop (as timeit does: other load on the machine only ever adds time);
the median of the paired round ratios is printed beside it. Target: overhead <= 3%.

    python benchmarks/overhead.py [--scenario 10x-image] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.backends.base import BackendContext  # noqa: E402
from benchbench.backends.transformers import TransformersBackend, TransformersOptions  # noqa: E402
from benchbench.execution.runner import measure_request  # noqa: E402
from benchbench.config.scenario import load_scenario  # noqa: E402
from benchbench.models.tiny import ensure_tiny_model  # noqa: E402
from benchbench.workload.build import build_workload  # noqa: E402


def bare_loop(backend: TransformersBackend, requests) -> float:
    """Seconds for preprocessing + generate on every request, no harness around it."""
    import torch

    start = time.process_time()
    for request in requests:
        prepared = backend.prepare(request)
        with torch.inference_mode():
            backend.model.generate(
                input_ids=prepared.input_ids, attention_mask=prepared.attention_mask,
                pixel_values=prepared.pixel_values, max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.max_new_tokens, do_sample=False, num_beams=1,
                eos_token_id=backend.eos_token_id, pad_token_id=backend.tokenizer.pad_token_id,
            )
    return time.process_time() - start


def harness_loop(backend: TransformersBackend, requests) -> float:
    start = time.process_time()
    for request in requests:
        measure_request(backend, request, repeat=0)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="10x-image")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    workload = build_workload(load_scenario(args.scenario))
    context = BackendContext("transformers", ensure_tiny_model(), "auto", "cpu", Path("."), 0)
    backend = TransformersBackend(TransformersOptions(), context)
    backend.load()
    for request in workload.warmup:
        measure_request(backend, request, repeat=0)
    rounds = []
    for round_index in range(args.rounds):
        loops = [("bare", bare_loop), ("harness", harness_loop)]
        if round_index % 2:
            loops.reverse()
        rounds.append({name: loop(backend, workload.measured) for name, loop in loops})
        print(f"round {round_index}: bare {rounds[-1]['bare']:.3f} s, harness {rounds[-1]['harness']:.3f} s CPU")
    best = {name: min(r[name] for r in rounds) for name in ("bare", "harness")}
    overhead = 100 * (best["harness"] / best["bare"] - 1)
    paired = 100 * (statistics.median(r["harness"] / r["bare"] for r in rounds) - 1)
    print(f"fastest round: bare {best['bare']:.3f} s, harness {best['harness']:.3f} s CPU")
    print(f"harness overhead: {overhead:+.2f}% (fastest rounds; median paired round {paired:+.2f}%) — target <= 3%")
    sys.exit(0 if overhead <= 3.0 else 1)


if __name__ == "__main__":
    main()
