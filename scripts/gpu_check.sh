#!/usr/bin/env bash
# One-shot proof of benchbench's CUDA paths on a single-GPU machine with no network, in at most
# 8 minutes: 10x-image with the 1B-shaped embedded InternVL (random weights) on cuda in bf16 with
# placement cuda and auto, tiles-sweep, and the Transformers backend against `transformers serve`
# of the same model through the OpenAI backend (dialect transformers). Prints a summary and writes
# the run folders as one archive (plus the summary as text) into OUTDIR. Exits non-zero, saying
# why, on a missing package, no GPU, any failed backend, any unfair request or any CUDA error.
#
#   scripts/gpu_check.sh OUTDIR [--device cpu] [--model PATH|embedded:NAME]
#
# --device cpu --model <tiny model folder> is the rehearsal on a machine without a GPU: the same
# runs with 2 measured requests of 8 tokens each, placement cpu, `auto` left out, a 30-minute budget. benchbench need not be installed: the repository root is
# put on PYTHONPATH. Packages the GPU image lacks come as wheels from scripts/gpu_wheels.sh; install
# them first with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail

outdir="${1:?usage: scripts/gpu_check.sh OUTDIR [--device cpu] [--model PATH|embedded:NAME]}"
shift
device=cuda
for ((i = 1; i <= $#; i++)); do
  [[ "${!i}" == "--device" ]] && { j=$((i + 1)); device="${!j}"; }
done
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_UPDATE_CHECK=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# module:pip-name pairs; every one must import, or nothing runs.
needed=(torch:torch transformers:transformers accelerate:accelerate numpy:numpy pandas:pandas
        matplotlib:matplotlib jinja2:jinja2 click:click yaml:pyyaml tqdm:tqdm pynvml:nvidia-ml-py
        torchvision:torchvision psutil:psutil PIL:pillow tokenizers:tokenizers safetensors:safetensors
        pydantic:pydantic pydantic_core:pydantic-core tabulate:tabulate scipy:scipy httpx:httpx httpcore:httpcore anyio:anyio
        httpx_sse:httpx-sse rapidfuzz:rapidfuzz fastapi:fastapi starlette:starlette uvicorn:uvicorn
        openai:openai requests:requests)
echo "gpu_check: $("$python" --version 2>&1) at $(command -v "$python"); benchbench from $repo"
"$python" - "$device" "${needed[@]}" <<'EOF'
import importlib, sys
from importlib import metadata

device, pairs = sys.argv[1], [arg.split(":") for arg in sys.argv[2:]]
missing, versions = [], []
for module, dist in pairs:
    try:
        importlib.import_module(module)
        versions.append(f"{dist} {metadata.version(dist)}")
    except Exception as exc:  # a broken install counts as missing, with its reason
        missing.append(f"{dist} (import {module}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
print("packages: " + ", ".join(versions))
if not missing:
    for module in ("transformers.cli.transformers", "transformers.cli.serving.server"):  # what `transformers serve` runs
        try:
            importlib.import_module(module)
        except Exception as exc:
            missing.append(f"transformers[serving] (import {module}: {type(exc).__name__}: {exc})")
if missing:
    print("MISSING PACKAGES, nothing was run:\n  " + "\n  ".join(missing)
          + "\ninstall the wheels from scripts/gpu_wheels.sh (pip install --no-index --no-deps --target DIR) "
            "and put DIR on PYTHONPATH", file=sys.stderr)
    sys.exit(3)
import torch

if device == "cuda":
    if not torch.cuda.is_available():
        print(f"NO CUDA GPU: torch {torch.__version__} sees none (built for CUDA {torch.version.cuda}); "
              "run on the GPU machine, or rehearse with --device cpu", file=sys.stderr)
        sys.exit(4)
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__} CUDA {torch.version.cuda}")
EOF
exec "$python" "$repo/scripts/gpu_check.py" "$outdir" "$@"
