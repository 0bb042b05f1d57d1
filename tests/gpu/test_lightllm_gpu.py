"""The LightLLM backend against the real engine on a GPU.

Needs: a CUDA GPU, LightLLM importable (in this interpreter, or in BENCHBENCH_LIGHTLLM_PYTHON, the
python of the environment it is installed in), and BENCHBENCH_GPU_MODEL, a local InternVL
checkpoint folder. Skips, saying which is missing, otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lightllm.backend import LightLLMBackend
from benchbench.config.scenario import parse_scenario
from benchbench.workload.build import build_workload

LIGHTLLM_PYTHON = os.environ.get("BENCHBENCH_LIGHTLLM_PYTHON", sys.executable)
MODEL = os.environ.get("BENCHBENCH_GPU_MODEL")


def _missing() -> str | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU"
    except ImportError:
        return "torch is not installed"
    if not MODEL:
        return "BENCHBENCH_GPU_MODEL (an InternVL checkpoint folder) is not set"
    if LIGHTLLM_PYTHON == sys.executable:
        if importlib.util.find_spec("lightllm") is None:
            return "lightllm is not importable here; install it or set BENCHBENCH_LIGHTLLM_PYTHON"
    elif subprocess.run([LIGHTLLM_PYTHON, "-c", "import lightllm"], capture_output=True).returncode != 0:
        return f"lightllm is not importable by {LIGHTLLM_PYTHON}"
    return None


MISSING = _missing()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(MISSING is not None, reason=f"LightLLM GPU test: {MISSING}")]


def requests(max_nums: list[int], max_new_tokens: int):
    scenario = parse_scenario(
        {
            "name": "lightllm-gpu",
            "images": {"synthetic": {"sizes": [[800, 600]]}},
            "prompt": {"turns": [{"user": "<image>\nDescribe the image in detail."}]},
            "requests": 1,
            "warmup": 0,
            "max_new_tokens": max_new_tokens,
            "tiling": {"sweep_max_num": max_nums},
        },
        source="test",
    )
    return build_workload(scenario).measured


class CountingTimer:
    def __init__(self):
        self.tokens_seen = 0

    def tokens(self, count: int = 1) -> None:
        self.tokens_seen += count


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    context = BackendContext(
        name="lightllm", model_path=Path(MODEL), dtype="auto", device=None,
        run_dir=tmp_path_factory.mktemp("run"), seed=0, trust_remote_code=True,
    )  # fmt: skip
    options = parse_options(LightLLMBackend, {"python": LIGHTLLM_PYTHON, "mem_fraction": 0.8}, "lightllm")
    engine = LightLLMBackend(options, context)
    engine.load()
    yield engine
    engine.close()


def test_streams_exactly_n_tokens(backend):
    request = requests([6], max_new_tokens=32)[0]
    timer = CountingTimer()
    generation = backend.generate(backend.prepare(request), timer)
    assert (generation.output_tokens, timer.tokens_seen, generation.finish_reason) == (32, 32, "length")
    assert generation.token_ids is not None and len(generation.token_ids) == 32


def test_predicted_lightllm_tiles_match_the_engines_prompt_tokens(backend):
    """Between two tile budgets only the image tokens change, so the prompt_tokens difference
    checks lightllm_tiles against the engine itself."""
    small, large = requests([1, 6], max_new_tokens=1)
    generated = [backend.generate(backend.prepare(request), CountingTimer()) for request in (small, large)]
    assert generated[1].input_tokens - generated[0].input_tokens == generated[1].image_tokens - generated[0].image_tokens
