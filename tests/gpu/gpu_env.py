"""What GPU tests need from the machine, as a skip reason (None when present)."""

from __future__ import annotations

import os


def cuda_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU"


def model_missing() -> str | None:
    if not os.environ.get("BENCHBENCH_GPU_MODEL"):
        return "BENCHBENCH_GPU_MODEL (an InternVL checkpoint folder) is not set"
    return None
