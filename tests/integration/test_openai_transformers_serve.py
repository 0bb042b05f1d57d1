"""The OpenAI backend against a REAL ``transformers serve`` of the embedded tiny InternVL on CPU,
started as a real subprocess on 127.0.0.1.

``transformers serve`` needs ``transformers[serving]`` and torchvision, which do not install
beside this environment's torch, so it runs from its own environment: the python named by
BENCHBENCH_SERVE_PYTHON (``scripts/make_serve_venv.sh`` creates one and prints it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend
from benchbench.execution.launch import ServerSpec, free_port, launch
from benchbench.results.records import RecordSink, read_manifest, read_records
from benchbench.execution.runner import RunSettings, run_backend
from benchbench.config.scenario import BackendSpec, load_scenario
from benchbench.models.tiny import build_tokenizer
from benchbench.workload.build import build_workload
from server_requests import RecordingTimer, one_image_workload

pytestmark = pytest.mark.slow
SERVE_PYTHON_ENV = "BENCHBENCH_SERVE_PYTHON"


def serve_python() -> str:
    """The serve environment's python, or a skip that says how to get one."""
    python = os.environ.get(SERVE_PYTHON_ENV)
    if not python:
        pytest.skip(f"{SERVE_PYTHON_ENV} is unset: run scripts/make_serve_venv.sh and export the python it prints")
    if not Path(python).is_file():
        pytest.skip(f"{SERVE_PYTHON_ENV}={python} does not exist: run scripts/make_serve_venv.sh")
    probe = subprocess.run([python, "-c", "import fastapi, uvicorn, torchvision, transformers.cli.serving"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"{python} cannot run transformers serve ({last}): run scripts/make_serve_venv.sh")
    return python


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """``transformers serve`` of the tiny model; stopped (whole process group) after the module."""
    python = serve_python()  # skip before building the tiny model
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    port = free_port()
    spec = ServerSpec(
        name="transformers serve",
        argv=(python, "-m", "transformers.cli.transformers", "serve", str(tiny_model_dir),
              "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"),
        # No hub: the model is local, and the CLI's PyPI update check is switched off.
        env={"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"},
        port=port, log_path=tmp_path_factory.mktemp("serve") / "serve.log", startup_timeout_s=300,
    )  # fmt: skip
    with launch(spec) as server:
        yield server


def make_backend(url: str, run_dir: Path, **options) -> OpenAIBackend:
    context = BackendContext(name="openai", model_path=run_dir, dtype="auto", device=None, run_dir=run_dir, seed=0)
    return OpenAIBackend(parse_options(OpenAIBackend, {"url": url, **options}, "openai"), context)


def generate(backend: OpenAIBackend, request):
    timer = RecordingTimer()
    backend.calibrate([request])
    return backend.generate(backend.prepare(request), timer), timer


def test_every_10x_image_request_is_exact_fair_and_streamed(served, tmp_path):
    workload = build_workload(load_scenario("10x-image"))
    settings = RunSettings(run_dir=tmp_path, model_path=tmp_path, dtype="auto", device=None, seed=0)
    sink = RecordSink(tmp_path)
    try:
        spec = BackendSpec(kind="openai", options={"url": served.url, "dialect": "transformers"})
        outcome = run_backend(spec, workload, settings, sink, lambda record: None)
    finally:
        sink.close()
    assert outcome.status == "ok", outcome.error
    records = read_records(tmp_path)
    assert len(records) == 11
    for record in records:
        assert record.fairness.ok, (record.request_id, record.fairness.violations)
        assert (record.output_tokens, record.finish_reason) == (32, "length")
        # The server's tiling (GOT-OCR2 image processor) matches InternVL's plan on every aspect ratio.
        assert record.tiles == record.tiles_planned and record.image_tokens == record.image_tokens_planned
        # One content chunk per token, except tokens whose text the server skips (the tiny model
        # emits special tokens such as <|im_start|>): then the record says the chunks fell short and
        # keeps gaps between chunks, leaving per-token gaps unknown.
        streamed = record.details["streamed_tokens"]
        gaps = record.inter_token_s if streamed == 32 else record.inter_chunk_s
        assert 0 < record.ttft_s < record.e2e_s and len(gaps) == streamed - 1
        assert (record.inter_token_s is None) == (streamed < 32) and (record.inter_chunk_s is None) == (streamed == 32)
        assert record.details["stream_count_source"] == "one per content chunk" and 24 <= streamed <= 32
        assert [note.kind for note in record.notes] == (["inter_token_chunks"] if streamed < 32 else [])
        assert record.details["image_wrapper_tokens"] == 3  # <img>, </img> and the template's newline


def test_exact_tokens_are_forced_by_the_server_even_when_the_model_wants_to_stop(served, tmp_path):
    eos = build_tokenizer().convert_tokens_to_ids("<|im_end|>")
    favour_eos = {"logit_bias": {str(eos): 100.0}}  # makes EOS the greedy pick at every step
    request = one_image_workload(8).measured[0]
    forced = make_backend(served.url, tmp_path, dialect="transformers", extra_body=favour_eos)
    forced.load()
    generation, timer = generate(forced, request)
    assert (generation.output_tokens, generation.finish_reason, sum(timer.counts)) == (8, "length", 8)
    plain = make_backend(served.url, tmp_path, dialect="generic", extra_body=favour_eos)
    plain.load()
    generation, timer = generate(plain, request)
    # A server that is not told to ignore EOS stops early; the count comes back, not the request.
    assert (generation.output_tokens, generation.finish_reason) == (1, "stop")


@pytest.mark.parametrize(("max_num", "tiles"), [(2, 1), (6, 7), (12, 13)])
def test_the_tile_budget_reaches_the_servers_image_processor(served, tmp_path, max_num, tiles):
    request = one_image_workload(1, max_num=max_num).measured[0]
    backend = make_backend(served.url, tmp_path, dialect="transformers")
    backend.load()
    generation, _ = generate(backend, request)
    assert request.tiles_planned == generation.tiles == tiles
    assert generation.image_tokens == tiles * 256


def test_a_generic_request_leaves_the_server_at_its_own_tile_default(served, tmp_path):
    backend = make_backend(served.url, tmp_path, dialect="generic")
    backend.load()
    generation, _ = generate(backend, one_image_workload(1, max_num=6).measured[0])
    assert generation.tiles == 13  # the checkpoint's processor_config says max_patches 12 (+ thumbnail)


def test_the_cli_runs_transformers_and_the_served_model_on_one_workload(served, run_bench, tmp_path):
    scenario = tmp_path / "both.yaml"
    scenario.write_text(
        "name: both\n"
        "images: {synthetic: {sizes: [[800, 600], [1024, 512]]}}\n"
        "prompt: {system: You are a helpful assistant., turns: [{user: \"<image>\\nDescribe this image in detail.\"}]}\n"
        "requests: 2\nwarmup: 1\nmax_new_tokens: 16\n"
        "backends:\n  - kind: transformers\n"
        f"  - kind: openai\n    options: {{url: \"{served.url}\", dialect: transformers}}\n"
    )
    result = run_bench("--scenario", str(scenario), "--output-dir", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "run")
    assert [(b.name, b.status) for b in manifest.backends] == [("transformers", "ok"), ("openai", "ok")]
    records = read_records(tmp_path / "run")
    by_backend = {name: [r for r in records if r.backend == name and r.phase == "measure"] for name in ("transformers", "openai")}
    assert [r.request_id for r in by_backend["transformers"]] == [r.request_id for r in by_backend["openai"]] == ["r000", "r001"]
    for local, served_record in zip(by_backend["transformers"], by_backend["openai"]):
        assert served_record.fairness.ok and local.fairness.ok
        # Same prompt text around the same image tokens: InternVL's template on both sides.
        assert served_record.input_tokens == local.input_tokens
    assert "Output consistency" in (tmp_path / "run" / "report.md").read_text()
