"""What benchbench controls for LightLLM: the exact argv and environment, the request JSON, and the
parsing of LightLLM's real answer shapes (ModelTC/lightllm snapshot fc72ffab, files cited per test)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.lightllm.versions import InstalledLightLLM
from benchbench.backends.lightllm.backend import LightLLMBackend, server_argv, server_env
from benchbench.backends.lightllm.client import LightLLMClient
from benchbench.backends.lightllm.protocol import (
    StreamAccumulator,
    StreamError,
    error_message,
    lightllm_resized,
    lightllm_tiles,
    parse_generate_response,
    parse_stream_data,
)
from benchbench.errors import BenchError
from benchbench.workload.imaging import TilingConfig, planned_tiles
from benchbench.config.scenario import parse_scenario
from benchbench.workload.build import build_workload


def options(**values):
    return parse_options(LightLLMBackend, values, "lightllm")


def run_wide_context(tmp_path: Path, trust_remote_code: bool = True) -> BackendContext:
    return BackendContext(
        name="lightllm", model_path=tmp_path / "model", dtype="auto", device=None, run_dir=tmp_path,
        seed=0, trust_remote_code=trust_remote_code,
    )  # fmt: skip


def backend(tmp_path: Path, trust_remote_code: bool = False, **values) -> LightLLMBackend:
    """A backend as after ``load``, with a client for a server that is not there (nothing is sent)."""
    made = LightLLMBackend(options(**values), run_wide_context(tmp_path, trust_remote_code))
    made.client = LightLLMClient("http://127.0.0.1:9", 1.0)
    return made


def one_request(sizes=((800, 600),), **tiling):
    scenario = parse_scenario(
        {
            "name": "unit",
            "images": {"synthetic": {"sizes": [list(size) for size in sizes]}},
            "prompt": {"system": "Be brief.", "turns": [{"user": "<image>\nDescribe the image."}]},
            "requests": 1,
            "warmup": 0,
            "max_new_tokens": 8,
            "tiling": tiling,
        },
        source="test",
    )
    return build_workload(scenario).measured[0]


# --- launch: argv and environment (lightllm/server/api_cli.py; docs/EN/source/tutorial/multimodal.rst)


# --help flag sets as each version lists them (api_cli.py of v1.1.0, v1.2.0, main)
V1_1_0 = InstalledLightLLM("1.1.0", None, frozenset({"--enable_multimodal", "--disable_dynamic_prompt_cache"}))
V1_2_0 = InstalledLightLLM("1.2.0", None, frozenset({"--enable_multimodal_url_cache", "--disable_dynamic_prompt_cache"}))
MAIN = InstalledLightLLM(
    None, "87881ae7", frozenset({"--enable_multimodal_url_cache", "--disable_dynamic_prompt_cache", "--disable_image_resize"})
)


def test_argv_is_the_exact_api_server_command_line():
    opts = options(python="/envs/lightllm/bin/python", tp=2, visual_dp=1, visual_tp=2, mem_fraction=0.8,
                   visual_infer_batch_size=4, cache_capacity=500)  # fmt: skip
    assert server_argv(opts, "/models/InternVL2_5-8B", 8123, False, V1_1_0) == [
        "/envs/lightllm/bin/python", "-m", "lightllm.server.api_server",
        "--model_dir", "/models/InternVL2_5-8B",
        "--host", "127.0.0.1",
        "--port", "8123",
        "--tp", "2",
        "--mem_fraction", "0.8",
        "--max_req_total_len", "16384",
        "--visual_infer_batch_size", "4",
        "--cache_capacity", "500",
        "--visual_dp", "1",
        "--visual_tp", "2",
        "--enable_multimodal",
        "--disable_dynamic_prompt_cache",
    ]  # fmt: skip


@pytest.mark.parametrize(("installed", "flags"), [
    (V1_1_0, ["--enable_multimodal", "--disable_dynamic_prompt_cache"]),
    (V1_2_0, ["--disable_dynamic_prompt_cache"]),
    (MAIN, ["--disable_dynamic_prompt_cache", "--disable_image_resize"]),
])  # fmt: skip
def test_only_flags_the_installed_version_lists_are_passed(installed, flags):
    argv = server_argv(options(), "/m", 1, False, installed)
    assert argv[argv.index("--visual_tp") + 2 :] == flags


def test_the_prompt_cache_stays_on_only_when_asked():
    assert "--disable_dynamic_prompt_cache" not in server_argv(options(prompt_cache=True), "/m", 1, False, MAIN)


def test_visual_batch_size_defaults_to_visual_dp():
    argv = server_argv(options(tp=4, visual_dp=4, visual_tp=1), "/m", 1, False, MAIN)
    assert argv[argv.index("--visual_infer_batch_size") + 1] == "4"


def test_a_visual_batch_size_not_a_multiple_of_visual_dp_is_refused():
    with pytest.raises(BenchError, match="visual_infer_batch_size 3 must be a multiple of visual_dp 2 .*; set it to 2"):
        options(tp=2, visual_dp=2, visual_infer_batch_size=3)


def test_trust_remote_code_flag_appears_only_when_asked():
    opts = options()
    assert "--trust_remote_code" not in server_argv(opts, "/m", 1, False, V1_1_0)
    assert server_argv(opts, "/m", 1, True, V1_1_0)[-1] == "--trust_remote_code"


def test_option_trust_remote_code_overrides_the_run_setting(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    run_wide, explicit_off = backend(tmp_path, trust_remote_code=True), LightLLMBackend(options(trust_remote_code=False), run_wide_context(tmp_path))
    run_wide.installed = explicit_off.installed = V1_1_0
    run_wide, explicit_off = run_wide._server_spec(), explicit_off._server_spec()
    assert "--trust_remote_code" in run_wide.argv
    assert "--trust_remote_code" not in explicit_off.argv


def test_extra_args_are_appended_after_the_owned_flags():
    argv = server_argv(options(extra_args=["--disable_cudagraph", "--nccl_port", "28800"]), "/m", 1, False, V1_1_0)
    assert argv[-3:] == ["--disable_cudagraph", "--nccl_port", "28800"]


def test_environment_sets_legacy_and_prefixed_names():
    assert server_env(options(image_length=64, load_workers=12)) == {
        "INTERNVL_IMAGE_LENGTH": "64",
        "LIGHTLLM_INTERNVL_IMAGE_LENGTH": "64",
        "LOADWORKER": "12",
        "LIGHTLLM_LOADWORKER": "12",
    }


def test_server_spec_binds_loopback_and_logs_into_the_run_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    launcher = backend(tmp_path, port=8555)
    launcher.installed = V1_1_0
    spec = launcher._server_spec()
    assert (spec.host, spec.port, spec.health_path) == ("127.0.0.1", 8555, "/health")
    assert spec.log_path == tmp_path / "logs" / "lightllm.server.log"


def test_missing_model_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(BenchError, match="no config.json"):
        backend(tmp_path).load()


# --- option validation


def test_visual_dp_times_visual_tp_must_equal_tp():
    with pytest.raises(BenchError, match="visual_dp 1 x visual_tp 1 must equal tp 2"):
        options(tp=2)


def test_url_mode_rejects_launch_settings():
    with pytest.raises(BenchError, match="url uses a running server, so port, tp cannot apply"):
        options(url="http://127.0.0.1:8000", port=9000, tp=1)


def test_extra_args_cannot_override_owned_flags():
    with pytest.raises(BenchError, match=r"extra_args \['--port'\] are set by benchbench"):
        options(extra_args=["--port=9"])


def test_unknown_option_is_named():
    with pytest.raises(BenchError, match="option 'mem_fractoin': unknown option"):
        options(mem_fractoin=0.5)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5])
def test_mem_fraction_must_be_strictly_between_0_and_1(value):
    # api_start.py asserts 0 < mem_fraction < 1; refuse it before launching anything.
    with pytest.raises(BenchError, match="mem_fraction"):
        options(mem_fraction=value)


# --- request JSON (lightllm/server/api_lightllm.py, core/objs/sampling_params.py, models/internvl/model.py)


def test_request_is_greedy_exactly_n_tokens_with_the_tile_budget(tmp_path):
    request = one_request(max_num=6)
    body = backend(tmp_path).prepare(request).body
    assert body["parameters"] == {
        "do_sample": False,
        "max_new_tokens": 8,
        "min_new_tokens": 8,
        "ignore_eos": True,
        "image_max_patch_num": 6,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "skip_special_tokens": False,
        "return_details": False,
    }


def test_main_is_asked_per_request_to_skip_the_prompt_cache(tmp_path):
    launched = backend(tmp_path)
    launched.installed = MAIN
    assert launched.prepare(one_request()).body["parameters"]["disable_prompt_cache"] is True
    launched.installed = V1_2_0
    assert "disable_prompt_cache" not in launched.prepare(one_request()).body["parameters"]


def test_a_large_image_is_predicted_at_the_size_lightllm_shrinks_it_to(tmp_path):
    launched = backend(tmp_path)
    launched.installed = V1_2_0
    big = one_request(max_num=24, sizes=[[4000, 3000]])
    prepared = launched.prepare(big)
    assert lightllm_resized(4000, 3000) == (2217, 1662)  # 3,686,400 px at the same aspect ratio
    assert prepared.tiles_per_image == (lightllm_tiles(2217, 1662, 24),) == (21,) != (lightllm_tiles(4000, 3000, 24),)
    assert prepared.images_shrunk == ("4000x3000 -> 2217x1662",)
    launched.installed = MAIN  # --disable_image_resize was passed
    assert launched.prepare(big).tiles_per_image == (lightllm_tiles(4000, 3000, 24),) == (25,)


def test_prompt_is_internvl_chatml_with_an_img_pair_per_image(tmp_path):
    body = backend(tmp_path).prepare(one_request()).body
    assert body["inputs"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<img></img>\nDescribe the image.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_images_travel_as_base64_of_the_workload_bytes(tmp_path):
    request = one_request()
    images = backend(tmp_path).prepare(request).body["multimodal_params"]["images"]
    assert [item["type"] for item in images] == ["base64"]
    assert base64.b64decode(images[0]["data"]) == request.images[0].data


def test_non_streaming_mode_asks_for_token_details(tmp_path):
    body = backend(tmp_path, stream=False).prepare(one_request()).body
    assert body["parameters"]["return_details"] is True


def test_tile_settings_lightllm_cannot_honour_are_refused(tmp_path):
    with pytest.raises(BenchError, match="set tiling min_num: 1"):
        backend(tmp_path).prepare(one_request(min_num=2))


def test_tokens_per_tile_must_match_image_length(tmp_path):
    with pytest.raises(BenchError, match="set the option image_length to 256"):
        backend(tmp_path, image_length=64).prepare(one_request())


# --- LightLLM's tile rule (lightllm/models/internvl/img_process.py, find_closest_aspect_ratio)


@pytest.mark.parametrize(
    ("size", "max_num", "tiles"),
    [
        ((448, 448), 12, 1),  # area 1 tile: 1x1, no thumbnail
        ((640, 480), 6, 1),  # ceil(1.53)=2 -> counts 1..3, 1x1 is closest in log ratio
        ((800, 600), 6, 5),  # ceil(2.39)=3 -> 2x2 (+thumbnail)
        ((800, 600), 12, 5),  # the budget does not matter once above the area
        ((1920, 1080), 6, 7),  # capped at 6 -> 3x2 (+thumbnail)
        ((2048, 1536), 6, 7),
    ],
)
def test_lightllm_tile_count(size, max_num, tiles):
    assert lightllm_tiles(*size, max_num) == tiles


def test_lightllm_and_internvl_tile_the_same_image_differently():
    assert planned_tiles(800, 600, TilingConfig(max_num=6)) == 7
    assert lightllm_tiles(800, 600, 6) == 5


def test_prepared_request_predicts_lightllm_tiles(tmp_path):
    assert backend(tmp_path).prepare(one_request(max_num=6)).tiles_per_image == (5,)


def test_checkpoint_pre_process_py_makes_tiles_unpredicted(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "pre_process.py").write_text("def get_image_patch(*a, **k): return 1\n")
    assert backend(tmp_path).prepare(one_request()).tiles_per_image is None


# --- answers (api_lightllm.py lightllm_generate / lightllm_generate_stream; core/objs/req.py)


STREAM_EVENT = (
    '{"token": {"id": 1734, "text": " cat", "logprob": -0.01, "special": false, '
    '"count_output_tokens": 3, "prompt_tokens": 1861}, "generated_text": null, '
    '"finished": true, "finish_reason": "length", "details": null}'
)


def test_stream_event_is_parsed_from_lightllms_data_line():
    event = parse_stream_data(STREAM_EVENT)
    assert (event.token_id, event.text, event.output_tokens_so_far, event.prompt_tokens) == (1734, " cat", 3, 1861)
    assert (event.finished, event.finish_reason) == (True, "length")


def stream_event(index: int, count: int | None, finished: bool = False) -> str:
    token = {"id": 100 + index, "text": f"<{index}>", "logprob": 0.0, "special": False}
    if count is not None:
        token["count_output_tokens"] = count
    event = {"token": token, "generated_text": None, "finished": finished,
             "finish_reason": "length" if finished else None, "details": None}  # fmt: skip
    return json.dumps(event)


def test_accumulator_counts_tokens_from_the_cumulative_counter():
    accumulated = StreamAccumulator()
    added = [accumulated.add(parse_stream_data(stream_event(i, i + 1, finished=i == 2))) for i in range(3)]
    result = accumulated.result()
    assert added == [1, 1, 1]
    assert (result.text, result.output_tokens, result.token_ids) == ("<0><1><2>", 3, [100, 101, 102])
    assert result.finish_reason == "length"


def test_accumulator_counts_one_token_per_event_when_the_counter_is_absent():
    accumulated = StreamAccumulator()
    for i in range(4):
        accumulated.add(parse_stream_data(stream_event(i, None)))
    assert accumulated.output_tokens == 4 and not accumulated.finished


def test_generate_answer_takes_the_first_of_the_generated_text_list():
    body = {"generated_text": ["a cat"], "count_output_tokens": 2, "finish_reason": "length", "prompt_tokens": 1861,
            "tokens": [{"id": 7, "text": "a"}, {"id": 8, "text": " cat"}]}  # fmt: skip
    result = parse_generate_response(body)
    assert (result.text, result.output_tokens, result.prompt_tokens, result.token_ids) == ("a cat", 2, 1861, [7, 8])


def test_generate_answer_without_details_has_no_token_ids():
    result = parse_generate_response({"generated_text": ["x"], "count_output_tokens": 1, "finish_reason": "stop"})
    assert result.token_ids is None and result.prompt_tokens is None


def test_error_message_quotes_lightllms_message_field():
    body = b'{"message": "the input prompt token len 17000 + max_new_tokens 8 > 16384"}'
    assert error_message(417, body) == "HTTP 417: the input prompt token len 17000 + max_new_tokens 8 > 16384"
    assert error_message(502, b"<html>Bad Gateway</html>") == "HTTP 502: <html>Bad Gateway</html>"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"message": "prompt too long"}', "HTTP 417: prompt too long"),  # v1.1.0
        (b'{"error": {"message": "prompt too long", "type": "BadRequestError", "code": 400}}', "HTTP 417: prompt too long"),
    ],
)
def test_both_error_shapes_are_quoted(body, message):
    assert error_message(417, body) == message


def test_an_error_event_in_the_stream_raises_with_the_servers_message():
    with pytest.raises(StreamError, match="KV cache exhausted"):
        parse_stream_data('{"error": {"message": "KV cache exhausted", "type": "InternalError"}}')
