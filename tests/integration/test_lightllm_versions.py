"""The LightLLM backend against StandInLightLLMServer (a stand-in, not LightLLM) behaving as
LightLLM v1.1.0, v1.2.0 and main do: their flag sets, error shapes, special-token defaults and
caches. Each test failed on the backend before it read the installed version."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchbench.config.scenario import BackendSpec, parse_scenario
from benchbench.errors import BackendError, BenchError
from benchbench.execution.measure import measure_request
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.results.records import RecordSink, read_records
from benchbench.workload.build import build_workload
from server_requests import RecordingTimer
from test_lightllm_standin import a_request, make_backend, record, shim_path  # noqa: F401 (fixtures)

VERSIONS = ["v1.1.0", "v1.2.0", "main"]


@pytest.fixture(params=VERSIONS)
def version(request, monkeypatch) -> str:
    monkeypatch.setenv("STANDIN_LIGHTLLM_VERSION", request.param)
    return request.param


def launched_args(record_path) -> dict:
    return json.loads(record_path.read_text().splitlines()[0])["args"]


def test_vision_and_cache_flags_are_the_ones_each_version_has(tmp_path, shim_path, record, version):
    backend = make_backend(tmp_path)
    try:
        facts = backend.load()
    finally:
        backend.close()
    args, argv = launched_args(record), facts["argv"]
    assert facts["engine_version"] == version.lstrip("v")
    # v1.2.0+ would read --enable_multimodal as --enable_multimodal_url_cache: it must not be sent there.
    assert ("--enable_multimodal" in argv) == (version == "v1.1.0")
    assert not args.get("enable_multimodal_url_cache")
    assert args["disable_dynamic_prompt_cache"] is True and facts["prompt_cache"] == "off"
    assert ("--disable_image_resize" in argv) == (version == "main")
    assert facts["image_resize"].startswith({"v1.1.0": "none", "v1.2.0": "on", "main": "off"}[version])


def test_visual_batch_defaults_to_visual_dp_so_a_two_gpu_vision_split_starts(tmp_path, shim_path, record, version):
    backend = make_backend(tmp_path, tp=2, visual_dp=2, visual_tp=1)
    try:
        backend.load()
    finally:
        backend.close()
    assert launched_args(record)["visual_infer_batch_size"] == 2


def test_a_visual_batch_that_is_not_a_multiple_of_visual_dp_is_refused_before_launch(tmp_path):
    with pytest.raises(BenchError, match=r"visual_infer_batch_size 3 must be a multiple of visual_dp 2"):
        make_backend(tmp_path, tp=2, visual_dp=2, visual_infer_batch_size=3)


def test_an_error_before_the_stream_is_quoted_in_either_shape(tmp_path, shim_path, version, monkeypatch):
    backend = make_backend(tmp_path)
    try:
        backend.load()
        prepared = backend.prepare(a_request())
        del prepared.body["parameters"]
        prepared = dataclasses.replace(prepared, request=backend.client.render("/generate_stream", prepared.body))
        status = "417" if version == "v1.1.0" else "400"
        with pytest.raises(BackendError, match=rf"refused /generate_stream: HTTP {status}: 'parameters'"):
            backend.generate(prepared, RecordingTimer())
    finally:
        backend.close()


def test_an_error_event_inside_a_started_stream_is_raised_not_counted(tmp_path, shim_path, monkeypatch):
    monkeypatch.setenv("STANDIN_LIGHTLLM_VERSION", "main")
    monkeypatch.setenv("STANDIN_ERROR_AFTER_TOKENS", "2")
    backend = make_backend(tmp_path)
    timer = RecordingTimer()
    try:
        backend.load()
        with pytest.raises(BackendError, match=r"reported an error mid-stream after 2 token\(s\): stand-in: KV cache exhausted"):
            backend.generate(backend.prepare(a_request(max_new_tokens=6)), timer)
    finally:
        backend.close()
    assert timer.counts == [1, 1]


def test_special_tokens_are_treated_the_same_whatever_the_versions_default(tmp_path, shim_path, record, version, monkeypatch):
    monkeypatch.setenv("STANDIN_SPECIAL_LAST", "1")
    backend = make_backend(tmp_path)
    try:
        backend.load()
        generation = backend.generate(backend.prepare(a_request(max_new_tokens=3)), RecordingTimer())
    finally:
        backend.close()
    assert generation.text == " t0 t1</s>"  # kept, as the Transformers and LMDeploy backends keep them


def test_a_repeated_prompt_is_not_served_from_the_prompt_cache(tmp_path, shim_path, version, monkeypatch):
    monkeypatch.setenv("STANDIN_PREFILL_S", "0.4")
    backend = make_backend(tmp_path)
    request = a_request(max_new_tokens=2)
    try:
        backend.load()
        ttfts = [measure_request(backend, request, repeat).record().ttft_s for repeat in range(2)]
    finally:
        backend.close()
    assert min(ttfts) >= 0.4, ttfts  # a cache hit would have skipped the stand-in's 0.4 s prefill


def test_a_native_hf_checkpoint_is_refused_in_one_line(tmp_path, shim_path, record):
    backend = make_backend(tmp_path)
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "internvl", "architectures": ["InternVLForConditionalGeneration"]}))
    with pytest.raises(BenchError, match=r"native -hf InternVL checkpoint; LightLLM serves only the remote-code internvl_chat"):
        backend.load()
    assert not record.exists()


def cache_workload(cache: str):
    scenario = parse_scenario({"name": "cache", "images": {"synthetic": {"sizes": [[640, 480]]}},
                               "prompt": {"turns": [{"user": "<image>\nWhat is shown?"}]}, "requests": 1, "warmup": 0,
                               "repeats": 2, "max_new_tokens": 2, "cache": cache}, source="test")  # fmt: skip
    return build_workload(scenario)


@pytest.mark.parametrize(("cache", "encoded_when_timed"), [("cold", True), ("warm", False)])
def test_the_declared_cache_state_is_what_the_image_cache_holds_when_timed(tmp_path, shim_path, monkeypatch, cache, encoded_when_timed):
    monkeypatch.setenv("STANDIN_LIGHTLLM_VERSION", "main")
    monkeypatch.setenv("STANDIN_IMAGE_ENCODE_S", "0.4")  # paid on an image-cache miss only (md5, no off switch)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    sink = RecordSink(tmp_path)
    try:
        settings = RunSettings(run_dir=tmp_path, model_path=model, dtype="auto", device=None, seed=0)
        outcome = run_backend(BackendSpec(kind="lightllm", options={"startup_timeout_s": 30}), cache_workload(cache),
                              settings, sink, lambda record: None)  # fmt: skip
    finally:
        sink.close()
    assert outcome.status == "ok", outcome.error
    measured = [r.ttft_s for r in read_records(tmp_path) if r.phase == "measure"]
    assert len(measured) == 2 and all((ttft >= 0.4) == encoded_when_timed for ttft in measured), measured
