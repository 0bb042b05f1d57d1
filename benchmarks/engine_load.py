"""What benchbench adds when it drives an in-process async engine under load (LMDeploy's path:
``execution/engine_load.py``), measured against the stand-in pipeline (``tests/unit/standin_lmdeploy.py``,
NOT an engine; known delays):

open loop at several rates, per request: the scheduler's lag (sent minus due; target p99 ≤ 1 ms,
the client-limited threshold), the handover (sent to the stand-in's ``preprocess`` starting on the
engine's loop: the thread hop plus that loop's own queueing, which lands in TTFT) and the mark
delay (the stand-in yielding the first output to benchbench's first token mark).

    python benchmarks/engine_load.py [--requests 400] [--rates 50,200,800]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from standin_lmdeploy import StandInSettings, standin_checkpoint, standin_lmdeploy_module  # noqa: E402

SETTINGS = StandInSettings(preprocess_s=0.001, ttft_s=0.01, token_s=0.002)
TOKENS = 16
sys.modules["lmdeploy"] = standin_lmdeploy_module(SETTINGS)

from benchbench.backends.base import BackendContext, parse_options  # noqa: E402
from benchbench.backends.lmdeploy.backend import LMDeployBackend  # noqa: E402
from benchbench.config.scenario import parse_scenario  # noqa: E402
from benchbench.execution.load_runner import run_workload_load  # noqa: E402
from benchbench.workload.build import build_workload  # noqa: E402


def point(backend: LMDeployBackend, requests: int, **load) -> list:
    scenario = parse_scenario(
        {"name": "engine-load", "images": {"synthetic": {"sizes": [[64, 64]]}},
         "prompt": {"turns": [{"user": "<image>\nhi"}]}, "requests": requests, "warmup": 0,
         "max_new_tokens": TOKENS, "load": load},
        source="benchmark",
    )  # fmt: skip
    measurements: list = []
    run_workload_load(backend, build_workload(scenario), measurements.append)
    return measurements


def ms(values) -> str:
    values = np.asarray(values) / 1e6
    return f"p50 {np.percentile(values, 50):.3f}  p99 {np.percentile(values, 99):.3f}  max {values.max():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rates", default="50,200,800")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="engine-load-"))
    context = BackendContext("lmdeploy", standin_checkpoint(folder / "checkpoint"), "auto", None, folder, 0, trust_remote_code=True)
    backend = LMDeployBackend(parse_options(LMDeployBackend, {"max_batch_size": 256}, "lmdeploy"), context)
    backend.load()
    engine = backend.pipe.async_engine
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            served = [m.served for m in point(backend, args.requests, rate=[rate], arrivals="constant")]
            assert all(s.status == "ok" for s in served), [s.message for s in served if s.status != "ok"][:3]
            sessions = [s.generation.token_ids[0] // 1000 for s in served]  # the stand-in's token ids carry it
            print(f"rate {rate:g} req/s, {len(served)} requests (ms)")
            print(f"  lag          {ms([s.lag_ns for s in served])}")
            print(f"  handover     {ms([engine.arrived[n] - s.start_ns for s, n in zip(served, sessions)])}")
            print(f"  mark delay   {ms([s.marks[0][0] - engine.emitted[n][0] for s, n in zip(served, sessions)])}")
    finally:
        backend.close()


if __name__ == "__main__":
    main()
