"""SGLang's InternVL tile rule (sglang python/sglang/srt/multimodal/processors/internvl.py) against
InternVL's: where they part, and the budget SGLang keeps for InternLM2-based checkpoints."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.checkpoint import checkpoint_family
from benchbench.backends.openai.backend import OpenAIBackend
from benchbench.backends.openai.sglang import sglang_budget, sglang_tiles
from benchbench.config.scenario import parse_scenario
from benchbench.errors import BenchError
from benchbench.workload.build import build_workload
from benchbench.workload.imaging import TilingConfig, planned_tiles

REMOTE_CODE_INTERNLM2 = {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
                         "llm_config": {"architectures": ["InternLM2ForCausalLM"]}}  # InternVL2_5-8B  # fmt: skip
REMOTE_CODE_QWEN2 = {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
                     "llm_config": {"architectures": ["Qwen2ForCausalLM"]}}  # InternVL2_5-1B  # fmt: skip


def family_of(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return checkpoint_family(tmp_path)


def test_a_square_image_at_budget_6_gets_five_tiles_where_internvl_plans_one():
    assert sglang_tiles(448, 448, 6) == 5
    assert planned_tiles(448, 448, TilingConfig(max_num=6)) == 1


def test_an_internlm2_based_checkpoint_runs_at_12_tiles_whatever_the_budget(tmp_path):
    family = family_of(tmp_path, REMOTE_CODE_INTERNLM2)
    assert family.internlm2_based
    assert [sglang_budget(budget, family) for budget in (1, 6, 24)] == [12, 12, 12]
    assert sglang_tiles(800, 600, sglang_budget(6, family)) == 13


def test_other_checkpoints_keep_the_requested_budget(tmp_path):
    assert sglang_budget(6, family_of(tmp_path, REMOTE_CODE_QWEN2)) == 6
    assert sglang_budget(6, None) == 6


@given(st.integers(16, 4096), st.integers(16, 4096), st.integers(1, 12))
def test_where_one_grid_is_closest_in_aspect_both_rules_agree(width, height, budget):
    grids = [(c, r) for c in range(1, budget + 1) for r in range(1, budget + 1) if c * r <= budget]
    best = min(abs(width / height - c / r) for c, r in grids)
    if sum(abs(width / height - c / r) == best for c, r in grids) == 1:
        assert sglang_tiles(width, height, budget) == planned_tiles(width, height, TilingConfig(max_num=budget))


def backend(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    context = BackendContext(name="sglang", model_path=tmp_path, dtype="auto", device=None, run_dir=tmp_path, seed=0)
    return OpenAIBackend(parse_options(OpenAIBackend, {"url": "http://127.0.0.1:1", "dialect": "sglang"}, "sglang"), context)


def test_the_sglang_dialect_declares_the_budget_uncontrolled_for_internlm2_checkpoints(tmp_path):
    assert backend(tmp_path, REMOTE_CODE_INTERNLM2).capabilities.controls_tiles is False
    assert backend(tmp_path, REMOTE_CODE_QWEN2).capabilities.controls_tiles is True


def test_the_lmdeploy_dialect_declares_the_budget_uncontrolled_for_hf_checkpoints(tmp_path):
    hf = {"architectures": ["InternVLForConditionalGeneration"], "model_type": "internvl", "text_config": {"model_type": "qwen2"}}
    openai = backend(tmp_path, hf)
    openai.options = openai.options.model_copy(update={"dialect": "lmdeploy"})
    assert openai.capabilities.controls_tiles is False


def test_min_num_other_than_1_is_refused_for_sglang(tmp_path):
    scenario = parse_scenario({"name": "t", "images": {"synthetic": {"sizes": [[800, 600]]}},
                               "prompt": {"turns": [{"user": "<image>\nHi"}]}, "requests": 1, "warmup": 0,
                               "max_new_tokens": 2, "tiling": {"min_num": 2, "max_num": 6}}, source="test")  # fmt: skip
    sglang = backend(tmp_path, REMOTE_CODE_QWEN2)
    sglang.model, sglang._baselines = "m", {}
    with pytest.raises(BenchError, match="SGLang always tiles from 1 tile .*set tiling min_num: 1"):
        sglang.prepare(build_workload(scenario).measured[0])
