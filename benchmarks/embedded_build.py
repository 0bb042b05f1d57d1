"""How long building an embedded realistic-size model takes on CPU (target for the 1B shape: < 60 s).

Builds into a fresh temporary cache (so nothing is reused) and prints wall and process CPU time;
on a shared machine the CPU time is the steadier figure. Deletes the build afterwards.

    flock /work/bench.lock python benchmarks/embedded_build.py [--model embedded:internvl2_5-1b]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:internvl2_5-1b")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="bb-build-")
    os.environ["BENCHBENCH_CACHE"] = cache
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        from benchbench.models.embedded import ensure_embedded_model

        path, _ = ensure_embedded_model(args.model)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = sum(f.stat().st_size for f in path.iterdir()) / 2**30
        print(f"{args.model}: built in {wall:.1f} s wall, {cpu:.1f} s CPU (imports included), {size:.2f} GiB")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    sys.exit(0 if wall < 60 else 1)


if __name__ == "__main__":
    main()
