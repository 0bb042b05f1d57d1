"""Transformers on a GPU: cuda, auto and InternVL's split_model map, 8-/4-bit. Skipped without CUDA.

Set BENCHBENCH_GPU_MODEL to a real InternVL checkpoint to run the split/quantised tests on it;
the tiny model covers single-GPU placement.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gpu_env import cuda_missing, model_missing

from benchbench.backends.base import BackendContext
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.execution.measure import measure_request
from benchbench.config.scenario import load_scenario
from benchbench.workload.build import build_workload

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(cuda_missing()), reason=f"Transformers GPU test: {cuda_missing()}")]


def run_one(model_dir: Path, **options):
    context = BackendContext("transformers", model_dir, "auto", None, Path("."), 0, trust_remote_code=True)
    backend = TransformersBackend(TransformersOptions(**options), context)
    info = backend.load()
    request = build_workload(load_scenario("10x-image")).measured[0]
    measure_request(backend, request, 0)  # warm (CUDA kernels)
    return info, measure_request(backend, request, 0).record()


@pytest.mark.parametrize("placement", ["cuda", "auto"])
def test_tiny_model_on_gpu_emits_exact_tokens(tiny_model_dir, placement):
    info, record = run_one(tiny_model_dir, placement=placement)
    assert info["dtype"] == "bfloat16" and record.fairness.ok and record.output_tokens == 32


@pytest.mark.skipif(bool(model_missing()), reason=f"split_model test: {model_missing()}")
def test_split_model_places_vision_on_gpu0_and_stays_exact():
    import torch

    info, record = run_one(Path(os.environ["BENCHBENCH_GPU_MODEL"]), placement="split")
    vision = [device for name, device in info["device_map"].items() if "vision" in name]
    assert vision and all(device in {"0", "cuda:0"} for device in vision)
    assert len(set(info["device_map"].values())) == torch.cuda.device_count()
    assert record.fairness.ok


@pytest.mark.parametrize("bits", ["load_8bit", "load_4bit"])
@pytest.mark.skipif(bool(model_missing()), reason=f"bitsandbytes test: {model_missing()}")
def test_quantised_loading_runs_fair(bits):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    info, record = run_one(Path(os.environ["BENCHBENCH_GPU_MODEL"]), placement="cuda", **{bits: True})
    assert info["quantisation"] == bits.removeprefix("load_") and record.fairness.ok
