"""LMDeploy backend: the exact configs and request messages benchbench builds, the folding of
lmdeploy's streamed responses, and the errors a user can hit.

Where lmdeploy imports (it does on CPU; only its engines need CUDA), the built objects are also
checked against lmdeploy's real classes and request-parsing functions; elsewhere those tests skip.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from pathlib import Path

import pytest
from PIL import Image
from standin_lmdeploy import StandInResponse

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lmdeploy.backend import (
    LMDeployBackend,
    LMDeployOptions,
    PreparedRequest,
    engine_config_kwargs,
    import_lmdeploy,
)
from benchbench.backends.lmdeploy.inputs import (
    IMAGE_TOKEN,
    StreamFold,
    engine_dtype,
    engine_tiling,
    generation_config_kwargs,
    request_messages,
    tiling_mismatches,
)
from benchbench.errors import BackendError, BenchError, ModelError
from benchbench.workload.imaging import TilingConfig
from benchbench.workload.prompt import IMG_CONTEXT, IMG_END, IMG_START, render_prompt
from benchbench.config.scenario import load_scenario
from benchbench.workload.build import build_workload

try:
    import lmdeploy
except ImportError as exc:  # the extra is not installed: real-class checks skip
    lmdeploy = None
    LMDEPLOY_MISSING = f"lmdeploy is not importable here ({exc}); pip install -e .[lmdeploy]"
else:
    LMDEPLOY_MISSING = ""
needs_lmdeploy = pytest.mark.skipif(lmdeploy is None, reason=LMDEPLOY_MISSING)


def first_request(scenario: str, **overrides):
    workload = build_workload(load_scenario(scenario).with_overrides(requests=1, warmup=0, **overrides))
    return workload.measured[0]


def context(model_path: Path, dtype: str = "auto", trust_remote_code: bool = False) -> BackendContext:
    return BackendContext("lmdeploy", model_path, dtype, None, model_path, 0, trust_remote_code)


# --- engine configuration -------------------------------------------------------------------


def test_engine_config_sets_every_field_from_options():
    options = LMDeployOptions(tp=2, session_len=8192, cache_max_entry_count=0.5, max_batch_size=4, quant_policy=8)
    assert engine_config_kwargs(options, "bfloat16") == {
        "dtype": "bfloat16",
        "tp": 2,
        "session_len": 8192,
        "cache_max_entry_count": 0.5,
        "max_batch_size": 4,
        "quant_policy": 8,
        "model_format": None,
        "enable_prefix_caching": False,
    }


def test_default_options_are_lmdeploys_defaults():
    assert engine_config_kwargs(LMDeployOptions(), "auto") == {
        "dtype": "auto", "tp": 1, "session_len": None, "cache_max_entry_count": 0.8, "max_batch_size": None,
        "quant_policy": 0, "model_format": None, "enable_prefix_caching": False,
    }  # fmt: skip


def test_unknown_option_is_rejected_with_the_valid_ones():
    with pytest.raises(BenchError, match=r"option 'tensor_parallel': unknown option.*valid options: engine, tp"):
        parse_options(LMDeployBackend, {"tensor_parallel": 2}, "lmdeploy")


def test_fp8_kv_cache_needs_the_pytorch_engine():
    with pytest.raises(BenchError, match="quant_policy 16 .* needs engine 'pytorch'"):
        parse_options(LMDeployBackend, {"quant_policy": 16}, "lmdeploy")
    assert parse_options(LMDeployBackend, {"quant_policy": 16, "engine": "pytorch"}, "lmdeploy").quant_policy == 16


def test_model_format_must_be_one_the_engine_reads():
    with pytest.raises(BenchError, match="model_format 'awq' is not one the pytorch engine reads"):
        parse_options(LMDeployBackend, {"engine": "pytorch", "model_format": "awq"}, "lmdeploy")


def test_float32_is_refused_since_lmdeploy_runs_half_precision():
    assert engine_dtype("auto", "lmdeploy") == "auto"
    with pytest.raises(BenchError, match="float16/bfloat16 only, not float32; use --dtype auto"):
        engine_dtype("float32", "lmdeploy")


# --- generation and request messages ---------------------------------------------------------


def test_generation_is_greedy_and_forced_to_exactly_max_new_tokens():
    request = first_request("10x-image")
    assert generation_config_kwargs(request) == {
        "max_new_tokens": 32, "min_new_tokens": 32, "ignore_eos": True, "do_sample": False, "top_k": 1,
        "random_seed": 0, "skip_special_tokens": False,
    }  # fmt: skip


def test_single_image_message_carries_the_tile_budget_per_image():
    request = first_request("10x-image")
    image = object()
    assert request_messages(request, [image]) == [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"{IMAGE_TOKEN}\nDescribe this image in detail."},
                {"type": "image_url", "image_url": {"url": image, "max_dynamic_patch": 6}},
            ],
        },
    ]


def test_images_keep_their_order_and_each_gets_the_budget():
    request = first_request("multi-image")
    first, second = object(), object()
    user = request_messages(request, [first, second])[1]
    assert (
        user["content"][0]["text"]
        == f"Image-1: {IMAGE_TOKEN}\nImage-2: {IMAGE_TOKEN}\nWhat differs between these two images?"
    )
    assert [item["image_url"] for item in user["content"][1:]] == [
        {"url": first, "max_dynamic_patch": 6},
        {"url": second, "max_dynamic_patch": 6},
    ]


def test_second_turn_resends_the_history_with_plain_text_turns():
    request = next(r for r in build_workload(load_scenario("multi-turn")).measured if r.request_id.endswith("-t2"))
    messages = request_messages(request, [object()])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "The image shows smooth colour gradients crossed by a few flat shapes."
    assert messages[3]["content"] == "Which colour covers the largest area?"


def test_a_sweep_request_sends_its_own_budget():
    request = first_request("tiles-sweep")
    budgets = {r.tiling.max_num for r in build_workload(load_scenario("tiles-sweep")).measured}
    assert (
        request_messages(request, [object()])[1]["content"][1]["image_url"]["max_dynamic_patch"]
        == request.tiling.max_num
    )
    assert len(budgets) > 1


# --- tiling lmdeploy will apply --------------------------------------------------------------


def write_checkpoint(root: Path, config: dict, preprocessor: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    if preprocessor is not None:
        (root / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return root


REMOTE_CODE_CONFIG = {
    "architectures": ["InternVLChatModel"], "dynamic_image_size": True, "min_dynamic_patch": 1,
    "max_dynamic_patch": 12, "use_thumbnail": True, "vision_config": {"image_size": 448},
}  # fmt: skip


def test_remote_code_checkpoint_takes_the_budget_per_request(tmp_path):
    tiling = engine_tiling(write_checkpoint(tmp_path, REMOTE_CODE_CONFIG))
    assert tiling.per_request_budget and tiling.architecture == "InternVLChatModel"
    assert tiling_mismatches(tiling, TilingConfig(max_num=6)) == []
    assert tiling_mismatches(tiling, TilingConfig(max_num=6, use_thumbnail=False)) == [
        "use_thumbnail True (checkpoint) != False (scenario)"
    ]


def test_remote_code_checkpoint_without_dynamic_tiling_is_refused(tmp_path):
    path = write_checkpoint(tmp_path, {**REMOTE_CODE_CONFIG, "dynamic_image_size": False}, {"crop_size": 448})
    with pytest.raises(ModelError, match="dynamic_image_size false, so lmdeploy would not tile"):
        engine_tiling(path)


def test_hf_checkpoint_budget_comes_from_its_preprocessor_config(tmp_path):
    hf = {"architectures": ["InternVLForConditionalGeneration"]}
    path = write_checkpoint(tmp_path, hf, {"max_patches": 12, "min_patches": 1, "size": {"height": 448, "width": 448}})
    tiling = engine_tiling(path)
    assert not tiling.per_request_budget and tiling.max_num == 12
    assert tiling_mismatches(tiling, TilingConfig(max_num=6)) == ["max_num 12 (checkpoint) != 6 (scenario)"]


def test_the_embedded_tiny_model_lacks_the_processor_config_lmdeploy_needs(tiny_model_dir):
    with pytest.raises(ModelError, match="no preprocessor_config.json; lmdeploy needs"):
        engine_tiling(tiny_model_dir)


def test_non_internvl_checkpoint_is_refused(tmp_path):
    with pytest.raises(ModelError, match="is not InternVL"):
        engine_tiling(write_checkpoint(tmp_path, {"architectures": ["LlamaForCausalLM"]}))


def test_prepare_refuses_a_budget_the_checkpoint_overrides(tmp_path):
    hf = write_checkpoint(tmp_path, {"architectures": ["InternVLForConditionalGeneration"]}, {"max_patches": 12})
    backend = LMDeployBackend(LMDeployOptions(), context(hf))
    backend.tiling = engine_tiling(hf)
    with pytest.raises(BenchError, match=r"takes max_num 12 \(checkpoint\) != 6 \(scenario\) from the checkpoint"):
        backend.prepare(first_request("10x-image"))


# --- streamed responses ----------------------------------------------------------------------


def response(**fields):
    cls = lmdeploy.messages.Response if lmdeploy is not None else StandInResponse
    return cls(**fields)


def streamed_responses() -> list:
    """What lmdeploy/serve/core/async_engine.py::generate yields for 4 tokens with ignore_eos: text and
    token_ids as deltas (one engine step may carry several tokens), generate_token_len cumulative,
    then a closing response with empty text/ids and the finish_reason."""
    return [
        response(text="the", generate_token_len=1, input_token_len=1830, token_ids=[11]),
        response(text=" image shows", generate_token_len=3, input_token_len=1830, token_ids=[12, 13]),
        response(text=" a", generate_token_len=4, input_token_len=1830, token_ids=[14]),
        response(text="", generate_token_len=4, input_token_len=1830, finish_reason="length", token_ids=[]),
    ]


def test_fold_concatenates_deltas_and_keeps_the_engines_counts():
    fold = StreamFold("r000")
    new_tokens = [fold.add(r) for r in streamed_responses()]
    assert new_tokens == [1, 2, 1, 0]
    assert (fold.text, fold.token_ids, fold.output_tokens, fold.input_tokens, fold.finish_reason) == (
        "the image shows a",
        [11, 12, 13, 14],
        4,
        1830,
        "length",
    )


def test_an_error_response_becomes_a_one_line_backend_error():
    failed = response(
        text="", generate_token_len=0, input_token_len=9000, finish_reason="error", token_ids=[],
        error_code="context_length_exceeded", error_message="Input length (9000) must be smaller",
    )  # fmt: skip
    with pytest.raises(BackendError, match="lmdeploy failed request r000: context_length_exceeded: Input length"):
        StreamFold("r000").add(failed)


def test_an_aborted_request_is_a_failure_not_a_short_answer():
    aborted = response(text="", generate_token_len=0, input_token_len=1830, finish_reason="abort", token_ids=[])
    fold = StreamFold("r001")
    fold.add(streamed_responses()[0])
    with pytest.raises(BackendError, match="lmdeploy failed request r001: abort: the engine aborted the request"):
        fold.add(aborted)


class StandInPipeline:
    """A stand-in for lmdeploy.Pipeline: replays a response stream and records how it was called."""

    def __init__(self, responses):
        self.responses, self.calls = responses, []

    def stream_infer(self, prompts, **kwargs):
        self.calls.append((prompts, kwargs))
        return iter(self.responses)


class RecordingTimer:
    def __init__(self):
        self.counts = []

    def tokens(self, count: int = 1) -> None:
        self.counts.append(count)


def test_generate_reports_each_chunk_to_the_timer_and_returns_the_engines_counts(tmp_path):
    backend = LMDeployBackend(LMDeployOptions(), context(tmp_path))
    backend.pipe, backend.template = StandInPipeline(streamed_responses()), "lmdeploy HFChatTemplate"
    prepared = PreparedRequest("r000", [{"role": "user", "content": "hi"}], gen_config="the-config")
    timer = RecordingTimer()
    generation = backend.generate(prepared, timer)
    assert timer.counts == [1, 2, 1]
    assert backend.pipe.calls == [(prepared.messages, {"gen_config": "the-config"})]
    assert (generation.output_tokens, generation.input_tokens, generation.token_ids) == (4, 1830, [11, 12, 13, 14])
    assert (generation.tiles, generation.image_tokens) == (None, None)  # lmdeploy does not report them
    assert generation.details == {
        "prompt_template": "lmdeploy HFChatTemplate",
        "engine": "turbomind",
        "cached_tokens": 0,
    }


# --- installation errors ---------------------------------------------------------------------


def test_missing_lmdeploy_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lmdeploy", None)  # makes `import lmdeploy` raise ImportError
    with pytest.raises(BackendError, match=r"lmdeploy cannot be imported .*pip install -e \.\[lmdeploy\]"):
        LMDeployBackend(LMDeployOptions(), context(tmp_path)).load()


def test_an_old_lmdeploy_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdeploy", types.SimpleNamespace(__version__="0.9.2"))
    with pytest.raises(BackendError, match="lmdeploy 0.9.2 is older than 0.16"):
        import_lmdeploy("lmdeploy")


# --- against the real lmdeploy ---------------------------------------------------------------


@needs_lmdeploy
@pytest.mark.parametrize("engine", ["turbomind", "pytorch"])
def test_real_engine_config_accepts_and_keeps_every_field(engine):
    options = LMDeployOptions(
        engine=engine, tp=2, session_len=8192, cache_max_entry_count=0.5, max_batch_size=4, quant_policy=8
    )
    kwargs = engine_config_kwargs(options, "bfloat16")
    cls = getattr(lmdeploy, {"turbomind": "TurbomindEngineConfig", "pytorch": "PytorchEngineConfig"}[engine])
    assert set(kwargs) <= set(inspect.signature(cls).parameters)
    config = cls(**kwargs)
    assert {name: getattr(config, name) for name in kwargs} == kwargs


@needs_lmdeploy
def test_real_generation_and_vision_configs_accept_what_benchbench_sends():
    kwargs = generation_config_kwargs(first_request("10x-image"))
    config = lmdeploy.GenerationConfig(**kwargs)
    assert {name: getattr(config, name) for name in kwargs} == kwargs
    assert lmdeploy.VisionConfig(max_batch_size=4).max_batch_size == 4


@needs_lmdeploy
def test_real_pipeline_entry_points_take_the_arguments_used():
    pipeline_params = inspect.signature(lmdeploy.pipeline).parameters
    assert {"backend_config", "trust_remote_code", "log_level", "kwargs"} <= set(
        pipeline_params
    )  # vision_config via kwargs
    assert "gen_config" in inspect.signature(lmdeploy.Pipeline.stream_infer).parameters


@needs_lmdeploy
def test_lmdeploy_parses_our_messages_into_per_image_tile_budgets():
    from lmdeploy.serve.processors.multimodal import MultimodalProcessor
    from lmdeploy.vl.model.base import VisionModel

    request = first_request("multi-image")
    images = [Image.new("RGB", (image.width, image.height)) for image in request.images]
    messages = request_messages(request, images)
    parsed = [None] * len(messages)
    for index in range(len(messages)):
        MultimodalProcessor._parse_multimodal_item(index, messages, parsed, {})
    items = VisionModel.collect_multimodal_items(parsed)
    assert [(modality, data, params) for modality, data, params in items] == [
        ("image", images[0], {"max_dynamic_patch": 6}),
        ("image", images[1], {"max_dynamic_patch": 6}),
    ]


@needs_lmdeploy
def test_lmdeploy_tiles_each_image_as_benchbench_planned():
    import torch
    from lmdeploy.vl.model.internvl import InternVLVisionModel

    workload = build_workload(load_scenario("10x-image").with_overrides(warmup=0))
    fake_model = types.SimpleNamespace(  # only the attributes _preprocess_v1_5 reads
        config=types.SimpleNamespace(min_dynamic_patch=1, max_dynamic_patch=12, use_thumbnail=True),
        vision_config=types.SimpleNamespace(image_size=448),
        transform=lambda tile: torch.zeros(3, 1, 1),
    )
    for request in workload.measured:
        image = Image.new("RGB", (request.images[0].width, request.images[0].height))
        params = request_messages(request, [image])[1]["content"][1]["image_url"]
        tiles = InternVLVisionModel._preprocess_v1_5(
            fake_model, image, {"max_dynamic_patch": params["max_dynamic_patch"]}
        )
        assert tiles.shape[0] == request.tiles_planned, request.images[0].source


@needs_lmdeploy
def test_lmdeploy_renders_the_same_prompt_text_as_benchbench(tiny_model_dir):
    from lmdeploy.model import HFChatTemplate
    from lmdeploy.serve.processors.multimodal import MultimodalProcessor
    from lmdeploy.vl.model.internvl import InternVLVisionModel

    template = HFChatTemplate(str(tiny_model_dir))
    for scenario in ("10x-image", "multi-image", "multi-turn"):
        request = build_workload(load_scenario(scenario).with_overrides(requests=1, warmup=0)).measured[-1]
        messages = request_messages(request, [Image.new("RGB", (64, 64)) for _ in request.images])
        parsed = [None] * len(messages)
        for index in range(len(messages)):
            MultimodalProcessor._parse_multimodal_item(index, messages, parsed, {})
        model = types.SimpleNamespace(image_token=IMG_CONTEXT)  # the one attribute proc_messages reads
        prompt, _ = InternVLVisionModel.proc_messages(model, parsed, template)
        assert prompt == render_prompt(request, lambda *_: IMG_START + IMG_CONTEXT + IMG_END), scenario
