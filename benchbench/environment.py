"""The fingerprint of where a run happened: versions, CPU, GPU (NVML), git commit, model weights."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("benchbench", "torch", "transformers", "accelerate", "lmdeploy", "lightllm", "bitsandbytes")
FULL_HASH_LIMIT_BYTES = 1 << 30
SAMPLE_BYTES = 1 << 20


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, Any]:
    """GPUs through NVML; with no driver, NVML's error is recorded as the reason there is none."""
    try:
        import pynvml
    except ImportError:
        return {"gpus": [], "nvml_error": "nvidia-ml-py not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"gpus": [], "nvml_error": str(exc)}
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append({"index": index, "name": _text(pynvml.nvmlDeviceGetName(handle)), "memory_total_mib": memory.total // 2**20})
        return {"gpus": gpus, "driver": _text(pynvml.nvmlSystemGetDriverVersion()), "nvml_error": None}
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def git_commit() -> dict[str, Any]:
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def fingerprint() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "packages": package_versions(),
        "git": git_commit(),
        **gpu_info(),
    }


def weights_hash(model_path: Path) -> dict[str, str]:
    """sha256 over config and weight files; above 1 GiB, over sizes and the first/last MiB of each
    file so a 70B checkpoint is fingerprinted in seconds (the method is recorded)."""
    files = sorted(p for p in model_path.iterdir() if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".model"})
    total = sum(p.stat().st_size for p in files)
    method = "full" if total <= FULL_HASH_LIMIT_BYTES else "sampled"
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
        with path.open("rb") as handle:
            if method == "full":
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
            else:
                digest.update(handle.read(SAMPLE_BYTES))
                handle.seek(max(0, path.stat().st_size - SAMPLE_BYTES))
                digest.update(handle.read(SAMPLE_BYTES))
    return {"sha256": digest.hexdigest(), "method": method}
