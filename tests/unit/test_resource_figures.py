"""Per-backend resource figures from the sampler's phases (plain data as a worker writes it)."""

from __future__ import annotations

import pytest

from benchbench.results.records import BackendOutcome, Fairness, RequestRecord
from benchbench.results.resources import backend_figures


def gpu(index: int, peak: float, energy_j: float) -> dict:
    return {"index": index, "name": "H100", "memory_peak_mib": peak, "memory_mean_mib": peak / 2,
            "sm_util_mean_pct": 50.0 + index * 10, "power_mean_w": 300.0, "energy_j": energy_j}  # fmt: skip


def phase(started_at: float, gpus: list[dict], error: str | None = None) -> dict:
    return {"phase": "serve", "started_at": started_at, "window_s": 10.0, "samples": 150, "sampler_cpu_s": 0.05,
            "host_rss_peak_mib": 900.0, "host_cpu_s": 12.0, "gpus": gpus, "gpu_error": error, "timeline": []}  # fmt: skip


def record(started_at: float, tokens: int, phase_name: str = "measure") -> RequestRecord:
    return RequestRecord(backend="b", backend_kind="transformers", phase=phase_name, request_id=f"r{started_at}",
                         repeat=0, started_at=started_at, max_tiles=6, tiles_planned=1, tiles=1,
                         image_tokens_planned=256, image_tokens=256, input_tokens=300, max_new_tokens=tokens,
                         output_tokens=tokens, preprocess_s=0.01, ttft_s=0.1, decode_s=0.2, e2e_s=0.3,
                         decode_tok_s=100.0, preprocess_in_ttft=False, text="", fairness=Fairness(ok=True))  # fmt: skip


def outcome(**resources) -> BackendOutcome:
    return BackendOutcome(name="b", kind="transformers", options={}, status="ok", resources=resources)


def test_gpu_figures_add_up_over_gpus_and_energy_is_per_token_of_the_window():
    serve = phase(100.0, [gpu(0, 20_000, 300.0), gpu(1, 10_000, 100.0)])
    load = phase(90.0, [gpu(0, 25_000, 50.0), gpu(1, 12_000, 20.0)])
    records = [record(101.0, 32, "warmup"), record(102.0, 32), record(103.0, 36)]
    figures = backend_figures(outcome(serve=serve, load=load), records)
    assert figures["gpu_mem_peak_mib"] == 30_000 and figures["load_gpu_mem_peak_mib"] == 37_000
    assert figures["energy_j"] == 400.0 and figures["joules_per_token"] == 400.0 / 100  # warmup tokens count
    assert figures["sm_util_mean_pct"] == 55.0 and figures["power_mean_w"] == 600.0
    assert figures["gpu_error"] is None


def test_records_from_before_the_window_a_resumed_runs_first_worker_are_left_out():
    figures = backend_figures(outcome(serve=phase(100.0, [gpu(0, 1_000, 64.0)])), [record(50.0, 32), record(101.0, 32)])
    assert figures["joules_per_token"] == 2.0


def test_without_a_gpu_the_gpu_figures_are_none_with_nvmls_reason_and_host_figures_stay():
    figures = backend_figures(outcome(serve=phase(100.0, [], "NVML: Driver Not Loaded")), [record(101.0, 32)])
    assert figures["gpu_mem_peak_mib"] is None and figures["joules_per_token"] is None
    assert figures["gpu_error"] == "NVML: Driver Not Loaded"
    assert figures["host_rss_peak_mib"] == 900.0 and figures["host_cpu_s"] == 12.0


def test_a_backend_that_was_never_sampled_says_so():
    figures = backend_figures(outcome(), [])
    assert figures["gpu_error"] == "not sampled" and figures["host_rss_peak_mib"] is None


def with_gpu(record_: RequestRecord, peak: float, start_mj: float, end_mj: float) -> RequestRecord:
    resources = {"gpu_mem_peak_mib": peak, "energy_mj_start": start_mj, "energy_mj_end": end_mj}
    return record_.model_copy(update={"details": {"resources": resources}})


def test_overlapping_requests_count_the_energy_of_their_joint_span_once():
    from benchbench.results.resources import gpu_mem_peak_of, joules_per_token_of

    overlapping = [with_gpu(record(1.0, 32), 20_000, 1_000, 5_000), with_gpu(record(1.1, 32), 21_000, 2_000, 6_400)]
    assert joules_per_token_of(overlapping) == (6_400 - 1_000) / 1000 / 64
    assert gpu_mem_peak_of(overlapping) == 21_000


def test_a_record_without_gpu_figures_leaves_the_repeat_without_them():
    from benchbench.results.resources import gpu_mem_peak_of, joules_per_token_of

    mixed = [with_gpu(record(1.0, 32), 20_000, 1_000, 5_000), record(2.0, 32)]
    assert gpu_mem_peak_of(mixed) is None and joules_per_token_of(mixed) is None


def test_energy_between_samples_is_interpolated_and_past_the_last_is_the_fresh_reading():
    from benchbench.execution.resources import _energy_at

    rows = [(0.0, [], 0.0, 1_000.0), (0.1, [], 0.0, 2_000.0), (0.2, [], 0.0, 4_000.0)]
    assert _energy_at(rows, 0.05, None) == pytest.approx(1_500.0)
    assert _energy_at(rows, 0.15, None) == pytest.approx(3_000.0)
    assert _energy_at(rows, 0.5, 9_000.0) == 9_000.0


def test_gpu_memory_and_energy_are_gate_metrics_with_repeat_samples_from_the_records():
    from benchbench.gate.rules import parse_rule
    from benchbench.results.metrics import direction, repeat_samples

    records = [with_gpu(record(1.0 + repeat, 32).model_copy(update={"repeat": repeat}), 20_000 + repeat, 0, 3_200)
               for repeat in range(3)]  # fmt: skip
    samples = repeat_samples(records)
    assert samples["gpu_mem_peak_mib"] == [20_000, 20_001, 20_002] and samples["joules_per_token"] == [0.1] * 3
    assert direction("gpu_mem_peak_mib").value == direction("joules_per_token").value == "lower"
    assert parse_rule("gpu_mem_peak_mib: +5%").text == "gpu_mem_peak_mib: +5%"
    assert parse_rule("joules_per_token: +10%").text == "joules_per_token: +10%"
    assert "joules_per_token" not in repeat_samples([record(1.0, 32)])  # no GPU: no sample, the gate cannot judge it
