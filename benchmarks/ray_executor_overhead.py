"""The Ray executor's own cost per cell, once the cluster is up: submit → the task starting on its
node, and shipping the finished run folder back (pack on the node, transfer, unpack here).

Cells of the tiny model are submitted one at a time to a fresh local Ray instance (so no cell ever
waits for a free slot, and submit → start is Ray's own latency); the first cell, which also pays
for starting Ray's worker process, is reported apart. Target: ≤ 2 s per cell.

    python benchmarks/ray_executor_overhead.py [--cells 5] [--ray-address HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchbench.sweep.executors.ray import RayExecutor  # noqa: E402
from benchbench.sweep.matrix import expand  # noqa: E402
from benchbench.sweep.spec import parse_sweep  # noqa: E402

SCENARIO = """\
name: ray-overhead
images: {synthetic: {sizes: [[448, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe this image."}]}
requests: 1
warmup: 0
max_new_tokens: 2
tiling: {max_num: 1}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--ray-address", default=None, help="default: a fresh local Ray instance")
    args = parser.parse_args()
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")  # a shared machine's memory is not ours to police
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else ray.init writes ~/.ray/auth_token, which later `ray start`s adopt
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "base.yaml").write_text(SCENARIO)
        spec = parse_sweep({"scenario": str(Path(folder) / "base.yaml"), "axes": {"seed": list(range(args.cells))}}, "bench")
        cells = expand(spec).cells
        costs = []
        with RayExecutor(args.ray_address, cells) as executor:
            for cell in cells:  # one at a time: no cell waits for a slot
                executor.run([cell], Path(folder), lambda cell: None, lambda cell, outcome: costs.append((cell, outcome)))
    for cell, outcome in costs:
        shipping = sum(outcome.executor_s.get(k, 0.0) for k in ("pack_s", "transfer_s", "unpack_s"))
        print(f"{cell.id:<12} {outcome.status:<7} cell {outcome.seconds:6.2f} s  submit->start "
              f"{outcome.executor_s.get('submit_to_start_s', float('nan')):6.3f} s  ship back {shipping:6.3f} s "
              f"({outcome.executor_s.get('archive_bytes', 0) / 1e3:.0f} kB)")
    warm = [outcome.executor_s for _, outcome in costs[1:] if outcome.executor_s]
    if warm:
        start = [c["submit_to_start_s"] for c in warm]
        ship = [c["pack_s"] + c["transfer_s"] + c["unpack_s"] for c in warm]
        total = [a + b for a, b in zip(start, ship)]
        print(f"warm cells ({len(warm)}): submit->start median {statistics.median(start):.3f} s (max {max(start):.3f}); "
              f"ship back median {statistics.median(ship):.3f} s (max {max(ship):.3f}); "
              f"executor cost per cell median {statistics.median(total):.3f} s (max {max(total):.3f}); target <= 2 s")


if __name__ == "__main__":
    main()
