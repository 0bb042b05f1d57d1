#!/usr/bin/env bash
# benchbench gating itself: a tiny-model run must stay fair and give the outputs of the committed
# baseline (scripts/self_gate/). No timing rule: a shared CPU machine's speed says nothing about benchbench.
#
#   scripts/self_gate.sh           run, then gate: exit 0 pass, 1 regression, 2 cannot judge
#   scripts/self_gate.sh --update  run, then save the run as the new baseline (after an intended change
#                                  of the workload or the tiny model; commit scripts/self_gate/baseline.json)
set -euo pipefail
cd "$(dirname "$0")/.."
here=scripts/self_gate
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

case "${1:-}" in
  --update)
    python run_bench.py --scenario "$here/scenario.yaml" --output-dir "$work/run" --no-progress
    python -m benchbench baseline save "$work/run" --to "$here/baseline.json" ;;
  "")
    python run_bench.py --scenario "$here/scenario.yaml" --output-dir "$work/run" --no-progress --gate "$here/gates.yaml" ;;
  *)
    echo "usage: scripts/self_gate.sh [--update]" >&2; exit 2 ;;
esac
