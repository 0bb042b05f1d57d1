"""The OpenAI-compatible backend's protocol: request bodies per server dialect, and parsing of the
chunk shapes those servers really send (sources named at each sample)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend, PreparedChat, _image_counts
from benchbench.backends.openai.client import OpenAIClient
from benchbench.backends.openai.protocol import baseline_body, request_body
from benchbench.backends.sse import SSEDecoder
from benchbench.backends.openai.responses import (
    DONE,
    ChatResult,
    Chunk,
    StreamAccumulator,
    StreamError,
    infer_tiles,
    parse_completion,
    parse_sse_data,
)
from benchbench.errors import BackendError, BenchError
from benchbench.config.scenario import load_scenario
from benchbench.workload.build import build_workload


def measured(scenario: str, index: int = 0):
    return build_workload(load_scenario(scenario).with_overrides(requests=2, warmup=0)).measured[index]


def sse(*events: object) -> list[bytes]:
    """Lines as a server writes them: ``data: <json>`` then a blank separator."""
    lines = []
    for event in events:
        payload = event if isinstance(event, str) else json.dumps(event)
        lines += [f"data: {payload}\n".encode(), b"\n"]
    return lines


def accumulate(lines: list[bytes], usage_per_chunk: bool = False) -> tuple[list[int], ChatResult]:
    accumulator, counts = StreamAccumulator(usage_per_chunk=usage_per_chunk), []
    decoder = SSEDecoder()
    for event in (parse_sse_data(data) for line in lines for data in decoder.feed(line)):
        if event is DONE:
            break
        if event is not None and (added := accumulator.add(event)):
            counts.append(added)
    return counts, accumulator.result()


# --- request bodies


def test_generic_dialect_sends_only_openai_standard_fields():
    request = measured("10x-image")
    body = request_body(request, "m", "generic", stream=True)
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "seed", "stream", "stream_options"}
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (32, 0.0, 0)
    assert body["stream_options"] == {"include_usage": True}


def test_image_travels_as_a_png_data_url_where_the_placeholder_was():
    body = request_body(measured("10x-image"), "m", "generic", stream=True)
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    image, text = user["content"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    # The server's InternVL template writes the newline after the image itself.
    assert text == {"type": "text", "text": "Describe this image in detail."}


def test_the_newline_after_an_image_is_kept_when_the_server_adds_none():
    body = request_body(measured("10x-image"), "m", "generic", stream=True, server_adds_image_newline=False)
    assert body["messages"][1]["content"][1]["text"] == "\nDescribe this image in detail."


def test_two_images_keep_their_places_in_the_text():
    parts = request_body(measured("multi-image"), "m", "generic", stream=True)["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert [part["text"] for part in parts if part["type"] == "text"] == ["Image-1: ", "Image-2: ", "What differs between these two images?"]


def test_a_second_turn_carries_the_history_as_plain_messages():
    request = measured("multi-turn", index=1)
    messages = request_body(request, "m", "generic", stream=True)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"][0]["type"] == "image_url"
    assert messages[-2] == {"role": "assistant", "content": request.messages[1].text}
    assert messages[-1] == {"role": "user", "content": "Which colour covers the largest area?"}


@pytest.mark.parametrize(
    ("dialect", "top_level", "image_extra"),
    [
        # vllm/entrypoints/openai/chat_completion/protocol.py (min_tokens, ignore_eos, return_token_ids,
        # mm_processor_kwargs); vllm InternVL processor: resolve_min_max_num(min_/max_dynamic_patch)
        ("vllm", {"min_tokens": 32, "ignore_eos": True, "return_token_ids": True, "skip_special_tokens": False,
                  "mm_processor_kwargs": {"max_dynamic_patch": 6, "min_dynamic_patch": 1},
                  "stream_options": {"include_usage": True, "continuous_usage_stats": True}}, {}),
        # python/sglang/srt/entrypoints/openai/protocol.py ChatCompletionRequest (min_dynamic_patch unused)
        ("sglang", {"min_tokens": 32, "ignore_eos": True, "max_dynamic_patch": 6, "skip_special_tokens": False,
                    "stream_options": {"include_usage": True, "continuous_usage_stats": True}}, {}),
        # lmdeploy/serve/openai/protocol.py; image params: lmdeploy/serve/processors/multimodal.py
        ("lmdeploy", {"min_new_tokens": 32, "ignore_eos": True, "return_token_ids": True, "skip_special_tokens": False,
                      "stream_options": {"include_usage": True}}, {"max_dynamic_patch": 6}),
        # transformers/cli/serving/chat_completion.py + utils.py (422 on unknown keys; generation_config
        # replaces the GenerationConfig); processor_kwargs reach InternVLProcessor's image processor
        ("transformers", {"generation_config": json.dumps({"max_new_tokens": 32, "min_new_tokens": 32, "do_sample": False}),
                          "chat_template_kwargs": {"processor_kwargs": {"max_patches": 6, "min_patches": 1}}}, {}),
    ],
)  # fmt: skip
def test_each_dialect_forces_exact_tokens_and_the_tile_budget_its_own_way(dialect, top_level, image_extra):
    body = request_body(measured("10x-image"), "m", dialect, stream=True)
    standard = {"model", "messages", "max_tokens", "temperature", "seed", "stream"}
    assert {key: body[key] for key in set(body) - standard} == top_level
    image_url = body["messages"][1]["content"][0]["image_url"]
    assert {key: value for key, value in image_url.items() if key != "url"} == image_extra


def test_text_only_requests_carry_no_tile_fields():
    request = measured("10x-image")
    text_only = type(request)(**{**vars(request), "images": (), "messages": (type(request.messages[0])("user", "Hi"),)})
    assert "chat_template_kwargs" not in request_body(text_only, "m", "transformers", stream=True)


def test_extra_body_is_applied_last():
    body = request_body(measured("10x-image"), "m", "vllm", stream=True, extra_body={"ignore_eos": False, "top_k": 1})
    assert (body["ignore_eos"], body["top_k"]) == (False, 1)


def test_non_streamed_requests_ask_for_no_stream_options():
    body = request_body(measured("10x-image"), None, "vllm", stream=False)
    assert body["stream"] is False and "stream_options" not in body and "model" not in body


def test_baseline_is_the_same_conversation_without_images_for_one_token():
    body = request_body(measured("multi-image"), "m", "transformers", stream=True)
    probe = baseline_body(body)
    assert probe == {
        "model": "m",
        "messages": [body["messages"][0], {"role": "user", "content": "Image-1: Image-2: What differs between these two images?"}],
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
    }


# --- stream parsing: transformers serve 5.24 (transformers/cli/serving/chat_completion.py, _streaming):
# role chunk, one chunk per decoded text piece, last chunk = empty delta + finish_reason + usage, no [DONE].

TRANSFORMERS_STREAM = sse(
    {"id": "9d9b", "choices": [{"delta": {"role": "assistant"}, "index": 0}], "created": 1795585869,
     "model": "/m", "object": "chat.completion.chunk", "system_fingerprint": ""},
    *[{"id": "9d9b", "choices": [{"delta": {"content": "\n"}, "index": 0}], "created": 1795585869, "model": "/m",
       "object": "chat.completion.chunk", "system_fingerprint": ""}] * 8,
    {"id": "9d9b", "choices": [{"delta": {}, "index": 0, "finish_reason": "length"}], "created": 1795585869,
     "model": "/m", "object": "chat.completion.chunk", "system_fingerprint": "",
     "usage": {"completion_tokens": 8, "prompt_tokens": 1860, "total_tokens": 1868}},
)  # fmt: skip


def test_transformers_serve_stream_counts_one_token_per_text_chunk_and_takes_usage_from_the_last():
    counts, result = accumulate(TRANSFORMERS_STREAM)
    assert counts == [1] * 8
    assert (result.text, result.output_tokens, result.prompt_tokens, result.finish_reason) == ("\n" * 8, 8, 1860, "length")
    assert (result.output_tokens_source, result.stream_count_source, result.token_ids) == ("usage", "one per content chunk", None)


def test_tokens_that_decoded_to_no_text_show_up_as_a_shortfall_not_as_fake_gaps():
    # DirectStreamer (transformers/cli/serving/utils.py) emits nothing for a token whose text is incomplete.
    lines = TRANSFORMERS_STREAM[:2] + TRANSFORMERS_STREAM[2:8] + sse(
        {"choices": [{"delta": {}, "index": 0, "finish_reason": "length"}], "usage": {"completion_tokens": 8, "prompt_tokens": 9}}
    )
    counts, result = accumulate(lines)
    assert (sum(counts), result.streamed_tokens, result.output_tokens) == (3, 3, 8)


# vLLM (vllm/entrypoints/openai/chat_completion/protocol.py): with return_token_ids each chunk's choice
# has token_ids (the delta's ids), continuous_usage_stats puts cumulative usage on every chunk, and a
# final usage-only chunk (choices: []) precedes [DONE].
VLLM_STREAM = sse(
    {"id": "c", "object": "chat.completion.chunk", "model": "m", "prompt_token_ids": [1, 2],
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "token_ids": []}],
     "usage": {"prompt_tokens": 2, "completion_tokens": 0, "total_tokens": 2}},
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"content": "Hel"}, "token_ids": [101]}],
     "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}},
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"content": "lo wor"}, "token_ids": [102, 103, 104]}],
     "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}},
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"content": "ld"}, "token_ids": [105], "finish_reason": "length"}],
     "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}},
    {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [],
     "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}},
    "[DONE]",
)  # fmt: skip


def test_vllm_multi_token_chunks_count_their_token_ids():
    counts, result = accumulate(VLLM_STREAM, usage_per_chunk=True)
    assert counts == [1, 3, 1]
    assert (result.text, result.token_ids, result.output_tokens) == ("Hello world", [101, 102, 103, 104, 105], 5)
    assert (result.streamed_tokens, result.stream_count_source) == (5, "token ids")


def test_vllm_cumulative_usage_counts_multi_token_chunks_without_token_ids():
    without_ids = [line.replace(b', "token_ids": [102, 103, 104]', b"").replace(b', "token_ids": [101]', b"")
                   .replace(b', "token_ids": [105]', b"").replace(b', "token_ids": []', b"") for line in VLLM_STREAM]  # fmt: skip
    counts, result = accumulate(without_ids, usage_per_chunk=True)
    assert counts == [1, 3, 1]
    assert (result.stream_count_source, result.token_ids) == ("usage deltas", None)


# LMDeploy (lmdeploy/serve/openai/chat_completions/serving.py): with include_usage every chunk says
# "usage": null, ids ride as output_ids (once per engine yield, possibly on an empty placeholder delta),
# the usage chunk has choices: [], then [DONE].
LMDEPLOY_STREAM = sse(
    {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "internvl",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "A"}, "output_ids": [7]}], "usage": None},
    {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "internvl",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "output_ids": [8, 9]}], "usage": None},
    {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "internvl",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": " cat"}, "output_ids": [10],
                  "finish_reason": "length"}], "usage": None},
    {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "internvl", "choices": [],
     "usage": {"prompt_tokens": 1800, "total_tokens": 1804, "completion_tokens": 4}},
    "[DONE]",
)  # fmt: skip


def test_lmdeploy_ids_on_an_empty_placeholder_delta_still_count():
    counts, result = accumulate(LMDEPLOY_STREAM)
    assert counts == [1, 2, 1]
    assert (result.text, result.token_ids, result.output_tokens, result.prompt_tokens) == ("A cat", [7, 8, 9, 10], 4, 1800)


# SGLang (python/sglang/srt/entrypoints/openai/protocol.py): chat chunks carry no ids; continuous usage
# does, and PromptTokensDetails may report image_tokens.
def test_sglang_cumulative_usage_and_its_image_token_count():
    lines = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "ab"}}], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
        {"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "length"}], "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 1792}}},
        "[DONE]",
    )
    counts, result = accumulate(lines, usage_per_chunk=True)
    assert counts == [2, 1]
    assert (result.output_tokens, result.image_tokens_reported) == (3, 1792)


def test_a_generic_server_without_usage_is_counted_and_says_so():
    lines = sse({"choices": [{"index": 0, "delta": {"content": "x"}}]}, {"choices": [{"index": 0, "delta": {"content": "y"}, "finish_reason": "stop"}]}, "[DONE]")
    _, result = accumulate(lines)
    assert (result.output_tokens, result.output_tokens_source, result.prompt_tokens) == (2, "counted in the stream (no usage sent)", None)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'data: {"error": "CUDA out of memory"}\n', "CUDA out of memory"),  # transformers serve _StreamError
        (b'data: {"error": {"message": "session 3 occupied", "code": 400}}\n', "session 3 occupied"),  # LMDeploy
    ],
)
def test_an_error_event_is_raised_with_the_servers_message(line, message):
    with pytest.raises(StreamError, match=message):
        parse_sse_data(SSEDecoder().feed(line + b"\n")[0])


def test_a_data_line_that_is_not_an_object_is_refused():
    with pytest.raises(ValueError, match="not an object"):
        parse_sse_data("[1, 2]")


def test_a_non_streamed_answer_is_parsed_with_its_usage():
    # transformers serve's non-streaming ChatCompletion (captured from 5.24.0).
    answer = {"id": "a", "choices": [{"finish_reason": "length", "index": 0, "message": {"content": "\n\n", "role": "assistant"}}],
              "object": "chat.completion", "usage": {"completion_tokens": 2, "prompt_tokens": 1860, "total_tokens": 1862}}  # fmt: skip
    result = parse_completion(answer)
    assert (result.text, result.output_tokens, result.prompt_tokens, result.finish_reason) == ("\n\n", 2, 1860, "length")


# --- image tokens


def test_tiles_are_the_prompt_growth_in_whole_tiles():
    # transformers serve, 800x600 at 6 tiles: 7 tiles x 256 + <img>, </img> and a newline.
    assert infer_tiles(1860, 65, 256) == (7, 3)
    assert infer_tiles(65 + 2 * (256 + 3), 65, 256) == (2, 6)


def test_image_counts_prefer_the_servers_own_number():
    prepared = PreparedChat(body={}, request=b"", baseline_tokens=65, tokens_per_tile=256)
    reported = ChatResult("", 1, "usage", 5000, 1792, "length", None)
    assert _image_counts(reported, prepared)[:2] == (7, 1792)
    inferred = ChatResult("", 1, "usage", 1860, None, "length", None)
    tiles, tokens, details = _image_counts(inferred, prepared)
    assert (tiles, tokens, details["image_wrapper_tokens"], details["text_only_prompt_tokens"]) == (7, 1792, 3, 65)


# --- options and capabilities


def backend(**options) -> OpenAIBackend:
    context = BackendContext("openai", Path("."), "auto", None, Path("."), 0)
    return OpenAIBackend(parse_options(OpenAIBackend, {"url": "http://127.0.0.1:1", **options}, "openai"), context)


def test_unknown_option_and_dialect_are_one_line_errors():
    with pytest.raises(BenchError, match="option 'dialects': unknown option"):
        backend(dialects="vllm")
    with pytest.raises(BenchError, match="option 'dialect': Input should be 'generic', 'vllm'"):
        backend(dialect="tgi")


def test_the_url_is_required():
    with pytest.raises(BenchError, match="option 'url': Field required"):
        parse_options(OpenAIBackend, {}, "openai")


@pytest.mark.parametrize(
    ("dialect", "exact", "tiles", "ids"),
    [("generic", False, False, False), ("vllm", True, True, True), ("sglang", True, True, False),
     ("lmdeploy", True, True, True), ("transformers", True, True, False)],
)  # fmt: skip
def test_capabilities_say_what_each_dialect_allows(dialect, exact, tiles, ids):
    capabilities = backend(dialect=dialect).capabilities
    assert (capabilities.forces_exact_tokens, capabilities.controls_tiles, capabilities.reports_token_ids) == (exact, tiles, ids)
    assert capabilities.preprocesses_inside_engine and capabilities.streams_tokens


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://h:1", "http://"])
def test_a_url_without_http_scheme_and_host_is_refused(url):
    with pytest.raises(BackendError, match="give it as http://HOST:PORT"):
        OpenAIClient(url, 1.0)


def test_a_trailing_v1_names_the_same_server():
    assert OpenAIClient("http://h:1/v1/", 1.0).http.url == OpenAIClient("http://h:1", 1.0).http.url == "http://h:1"
    assert OpenAIClient("https://h/proxy/v1", 1.0).http.url == "https://h/proxy"


def test_a_missing_api_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("BB_TEST_KEY", raising=False)
    with pytest.raises(BenchError, match="environment variable BB_TEST_KEY is unset"):
        backend(api_key_env="BB_TEST_KEY").load()


def test_chunk_defaults_describe_an_empty_chunk():
    assert StreamAccumulator().add(Chunk()) == 0


def picking(model: str | None) -> OpenAIBackend:
    context = BackendContext(name="openai", model_path=Path("."), dtype="auto", device=None, run_dir=Path("."), seed=0)
    backend = OpenAIBackend(parse_options(OpenAIBackend, {"url": "http://127.0.0.1:9", "model": model}, "openai"), context)
    backend.client = OpenAIClient("http://127.0.0.1:9", 5.0, None)  # never contacted: the listing is given
    return backend


def test_a_named_model_is_trusted_when_the_server_lists_none_as_pinned_transformers_serve_does():
    assert picking("/models/internvl")._pick_model([]) == "/models/internvl"
    assert picking("/models/internvl")._pick_model(None) == "/models/internvl"
    assert picking(None)._pick_model(["a", "b"]) == "a"
    with pytest.raises(BackendError, match="lists no models at /v1/models; set the backend option model"):
        picking(None)._pick_model([])
