"""The Transformers backend on the real tiny InternVL: exact token counts, tiling, placement errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.errors import BenchError, ModelError
from benchbench.execution.measure import StreamClock, measure_request
from benchbench.config.scenario import load_scenario
from benchbench.workload.build import build_workload


def backend_for(model_dir: Path, trust_remote_code: bool = False, **options) -> TransformersBackend:
    context = BackendContext("transformers", model_dir, "auto", "cpu", Path("."), 0, trust_remote_code)
    return TransformersBackend(TransformersOptions(**options), context)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    backend = backend_for(tiny_model_dir)
    info = backend.load()
    return backend, info


def test_load_reports_native_family_cpu_placement_and_256_tokens_per_tile(loaded):
    _, info = loaded
    assert info["family"] == "native InternVLForConditionalGeneration"
    assert info["placement"] == "cpu" and info["dtype"] == "float32" and info["tokens_per_tile"] == 256


def test_prepared_prompt_holds_exactly_the_planned_image_tokens(loaded):
    backend, _ = loaded
    request = build_workload(load_scenario("multi-image")).measured[0]
    prepared = backend.prepare(request)
    assert prepared.tiles == request.tiles_planned == prepared.pixel_values.shape[0]
    assert prepared.image_tokens == request.image_tokens_planned


def test_generation_streams_exactly_max_new_tokens_to_the_clock(loaded):
    backend, _ = loaded
    request = build_workload(load_scenario("10x-image").with_overrides(max_new_tokens=7)).measured[1]
    clock = StreamClock(backend.synchronize)
    generation = backend.generate(backend.prepare(request), clock)
    assert generation.output_tokens == 7 == len(generation.token_ids) == sum(n for _, n in clock.marks)
    assert len(clock.marks) == 7 and generation.text


def test_greedy_output_is_deterministic(loaded):
    backend, _ = loaded
    request = build_workload(load_scenario("10x-image")).measured[2]
    first, second = (measure_request(backend, request, repeat=0).record() for _ in range(2))
    assert first.token_ids == second.token_ids and first.fairness.ok


def test_injected_slowdown_stretches_decode(loaded, tiny_model_dir):
    request = build_workload(load_scenario("10x-image").with_overrides(max_new_tokens=6)).measured[1]
    slow = backend_for(tiny_model_dir, sleep_per_token_s=0.05)
    slow.load()
    assert measure_request(slow, request, 0).record().decode_s >= 0.2 > measure_request(loaded[0], request, 0).record().decode_s


@pytest.mark.parametrize("placement", ["cuda", "auto", "split"])
def test_gpu_placements_without_cuda_are_one_line_errors(tiny_model_dir, placement):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BenchError, match=f"placement '{placement}' needs a CUDA GPU"):
        backend_for(tiny_model_dir, placement=placement).load()


def test_quantised_loading_on_cpu_is_refused(tiny_model_dir):
    with pytest.raises(BenchError, match="8-/4-bit loading needs a CUDA GPU"):
        backend_for(tiny_model_dir, placement="cpu", load_4bit=True).load()


def test_both_quantisations_at_once_is_an_option_error():
    with pytest.raises(BenchError, match="choose one of load_8bit or load_4bit"):
        parse_options(TransformersBackend, {"load_8bit": True, "load_4bit": True}, "transformers")


def test_unknown_option_names_valid_ones():
    with pytest.raises(BenchError, match=r"option 'placment': unknown option.*valid options: placement"):
        parse_options(TransformersBackend, {"placment": "cpu"}, "transformers")


def test_remote_code_checkpoint_needs_explicit_trust(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["InternVLChatModel"]}))
    with pytest.raises(ModelError, match="pass --trust-remote-code"):
        backend_for(tmp_path).load()


def test_damaged_config_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json is not valid JSON"):
        backend_for(tmp_path).load()


def test_incomplete_checkpoint_is_a_model_error(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelError, match="cannot load"):
        backend_for(tmp_path).load()


def test_a_static_batch_of_different_prompt_lengths_answers_as_one_at_a_time(loaded):
    backend, _ = loaded
    requests = build_workload(load_scenario("10x-image").with_overrides(max_new_tokens=4)).measured[:3]
    prepared = [backend.prepare(request) for request in requests]
    assert len({p.input_ids.shape[1] for p in prepared}) > 1  # left padding is exercised
    alone = [backend.generate(p, StreamClock(backend.synchronize)).token_ids for p in prepared]
    clocks = [StreamClock(backend.synchronize) for _ in prepared]
    batched = backend.generate_batch(prepared, clocks)
    assert [g.token_ids for g in batched] == alone
    assert [(g.output_tokens, g.tiles, len(c.marks)) for g, c in zip(batched, clocks)] == [
        (4, r.tiles_planned, 4) for r in requests
    ]


def test_the_backend_declares_static_batching_up_to_its_batch_size(tiny_model_dir):
    concurrency = backend_for(tiny_model_dir, max_batch_size=3).concurrency
    assert (concurrency.batching, concurrency.max_in_flight) == ("static", 3)
