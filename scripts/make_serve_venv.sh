#!/usr/bin/env bash
# The Python environment that runs `transformers serve` for the OpenAI backend's real-server tests
# (tests/integration/test_openai_transformers_serve.py). Idempotent: an environment that already
# has the pinned versions is reused in about a second. Prints the environment's python on stdout:
#
#   export BENCHBENCH_SERVE_PYTHON="$(scripts/make_serve_venv.sh)"
#
# It is separate from benchbench's own environment because InternVLProcessor needs torchvision,
# and on these machines torchvision from PyPI installs only beside torch 2.14.1 (a CUDA build,
# ~5.7 GB, that runs on CPU), while benchbench's environment keeps the CPU torch 2.13.0.
# transformers is pinned to the version benchbench's environment has, so both read the tiny model alike.
#
#   BENCHBENCH_SERVE_VENV   where to put it [~/.cache/benchbench/serve-venv]
#   PYTHON                  interpreter to build it from [python3]
set -euo pipefail

venv="${BENCHBENCH_SERVE_VENV:-$HOME/.cache/benchbench/serve-venv}"
base_python="${PYTHON:-python3}"
transformers_version="$("$base_python" -c 'import transformers; print(transformers.__version__)' 2>/dev/null || echo 5.24.0)"
pins=(torch==2.14.1 torchvision==0.29.1 "transformers[serving]==$transformers_version")
stamp="$venv/.benchbench-pins"

if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "${pins[*]}" ]] \
   && "$venv/bin/python" -c 'import torchvision, fastapi, uvicorn, transformers.cli.serving' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi

echo "creating the transformers-serve environment in $venv (${pins[*]})" >&2
"$base_python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
"$venv/bin/python" -c 'import torchvision, fastapi, uvicorn, transformers.cli.serving'
echo "${pins[*]}" > "$stamp"
echo "$venv/bin/python"
