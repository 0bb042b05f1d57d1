"""What saving the workload in the run folder buys: building it vs reading the saved copy back.

Workers and ``--resume`` used to build the workload again (images drawn and PNG-encoded);
they now read ``workload/`` and check each image's SHA-256 and the workload hash.

    flock /work/bench.lock python benchmarks/workload_store.py [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.config.scenario import load_scenario  # noqa: E402
from benchbench.workload.build import build_workload  # noqa: E402
from benchbench.workload.store import load_workload, save_workload  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="10x-image")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    scenario = load_scenario(args.scenario).with_overrides(requests=args.requests)
    start = time.perf_counter()
    workload = build_workload(scenario)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        save_workload(Path(run_dir), workload)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        assert load_workload(Path(run_dir), workload.hash) == workload
        loaded = time.perf_counter() - start
        size = sum(path.stat().st_size for path in Path(run_dir).rglob("*") if path.is_file())
    print(f"{len(workload.requests)} requests: build {built:.2f} s, save {saved:.2f} s, read back and check {loaded:.3f} s "
          f"({size / 1e6:.1f} MB in workload/)")


if __name__ == "__main__":
    main()
