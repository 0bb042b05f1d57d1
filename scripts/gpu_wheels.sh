#!/usr/bin/env bash
# Download here, where a package index is reachable, the wheels that the offline GPU machine lacks
# for scripts/gpu_check.sh: benchbench's own runtime dependencies and `transformers serve`'s
# (transformers[serving]), for CPython 3.12 on manylinux x86_64. They install there with
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site
#
# That machine's image already has (docs: /work/.library/device/KINDS.md, read 2026-11-26) torch
# 2.11, transformers 5.17, accelerate, numpy, pandas, matplotlib, jinja2, click, pyyaml, tqdm,
# nvidia-ml-py, torchvision, psutil, pillow, scipy, tabulate, rich, typer, anyio, httpx, httpcore,
# h11, idna, certifi, annotated-doc: those are not carried (PRESENT below). The wanted packages are
# resolved together, with their dependencies, so the set is consistent; a dependency on neither list
# stops the script, so nothing new is carried or left out unnoticed. typing-extensions is carried
# although present: pydantic-core needs a recent one, and the image's version is not documented.
#
#   scripts/gpu_wheels.sh DIR        (DIR is emptied of *.whl first; prints the wheels and their total size)
set -euo pipefail

dir="${1:?usage: scripts/gpu_wheels.sh DIR}"
python="${PYTHON:-python3}"

# What gpu_check.sh needs that the image lacks, pinned to versions tested together here.
WANTED=(
  pydantic==2.13.4 httpx-sse==0.4.3 rapidfuzz==3.14.6 typing-extensions==4.16.0 sniffio==1.3.1
  fastapi==0.140.0 starlette==1.10.0 uvicorn==0.54.0 openai==2.54.0 jiter==0.19.0 distro==1.9.0
  annotated-types==0.8.0 typing-inspection==0.4.5
)
# Every wheel carried, dependencies included (names as pip normalises them).
CARRIED=(pydantic pydantic-core annotated-types typing-inspection httpx-sse rapidfuzz typing-extensions sniffio
         fastapi starlette uvicorn openai jiter distro)
# Already on the GPU machine: downloaded only as dependencies, then dropped.
PRESENT=(anyio httpx httpcore h11 idna certifi click tqdm annotated-doc)

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done

mkdir -p "$dir"
rm -f "$dir"/*.whl
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --abi abi3 --abi none "${platforms[@]}" -d "$dir" "${WANTED[@]}" \
  2> >(grep -v "^WARNING: Location 'file:" >&2)  # this machine's pip.conf names local indexes that may be absent

status=0
for wheel in "$dir"/*.whl; do
  name="$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]_.' '[:lower:]--')"
  if [[ " ${PRESENT[*]} " == *" $name "* ]]; then
    rm "$wheel"
  elif [[ " ${CARRIED[*]} " != *" $name "* ]]; then
    echo "gpu_wheels: $name is a new dependency; add it to CARRIED or PRESENT in $0 after checking KINDS.md" >&2
    status=1
  fi
done
for name in "${CARRIED[@]}"; do
  ls "$dir" | tr '[:upper:]_.' '[:lower:]--' | grep -q "^${name}-" \
    || { echo "gpu_wheels: no wheel for $name was downloaded" >&2; status=1; }
done
ls -1 "$dir"
du -ch "$dir"/*.whl | tail -1
exit "$status"
