"""The metric registry: one definition per metric that summary, baseline, gate rules and report headings read."""

import json

import numpy as np
import pytest

from benchbench.errors import BenchError
from benchbench.gate.baseline import load_baseline
from benchbench.gate.rules import parse_rule
from benchbench.results import metrics
from benchbench.results.metrics import Direction, RequestMetric
from benchbench.results.records import Fairness, RequestRecord
from benchbench.results.summary import summarize


def record(repeat=0, index=0, *, started_at=0.0, e2e_s=1.0, preprocess_s=0.1, ttft_s=0.3, output_tokens=7,
           inter_token_s=None, inter_chunk_s=None, backend="b", phase="measure") -> RequestRecord:
    return RequestRecord(
        backend=backend, backend_kind="transformers", phase=phase, request_id=f"r{index}", repeat=repeat,
        started_at=started_at, max_tiles=6, tiles_planned=1, tiles=1, image_tokens_planned=256, image_tokens=256,
        input_tokens=300, max_new_tokens=output_tokens, output_tokens=output_tokens, preprocess_s=preprocess_s,
        ttft_s=ttft_s, decode_s=None if ttft_s is None else 0.5, e2e_s=e2e_s, decode_tok_s=None, inter_token_s=inter_token_s,
        inter_chunk_s=inter_chunk_s, preprocess_in_ttft=False, text="x", fairness=Fairness(ok=True),
    )


def back_to_back(e2e_per_repeat: list[list[float]], **fields) -> list[RequestRecord]:
    """Each repeat's requests one after another, so the wall span is the sum of their e2e."""
    records, clock = [], 100.0
    for repeat, durations in enumerate(e2e_per_repeat):
        for index, e2e in enumerate(durations):
            records.append(record(repeat, index, started_at=clock, e2e_s=e2e, **fields))
            clock += e2e
    return records


def test_published_names_put_the_unit_before_the_statistic_and_are_unique():
    names = metrics.published_names()
    assert len(names) == len(set(names))
    assert {"req_s", "output_tok_s", "ttft_s_p90", "e2e_s_p50", "tpot_s_p90", "inter_token_s_p99"} <= set(names)
    assert metrics.resolve("ttft_s_p90") == (metrics.metric("ttft_s"), "p90")
    assert metrics.direction("output_tok_s") is Direction.HIGHER_IS_BETTER
    assert metrics.direction("tpot_s_p50") is Direction.LOWER_IS_BETTER


def test_tpot_is_time_after_the_first_token_per_later_token_without_ttft_or_preprocessing():
    tpot = metrics.metric("tpot_s")
    assert tpot.value(record(e2e_s=1.0, preprocess_s=0.1, ttft_s=0.3, output_tokens=7)) == pytest.approx(0.1)
    assert tpot.value(record(output_tokens=1)) is None
    assert tpot.value(record(ttft_s=None)) is None


def test_inter_token_p99_pools_every_gap_of_every_request():
    gaps = [[0.01] * 96 + [0.5] * 4, [0.02] * 99]
    records = [record(index=i, inter_token_s=g) for i, g in enumerate(gaps)]
    summary = metrics.aggregate(records)
    assert summary["inter_token_s_p99"] == pytest.approx(np.percentile(np.concatenate(gaps), 99))
    assert summary["inter_token_s_p99"] > 0.4  # the stalls show, though both requests' median gaps are small
    assert summary["inter_token_s_p50"] == pytest.approx(0.02)


def test_inter_chunk_times_pool_only_the_streams_whose_per_token_gaps_are_unknown():
    records = [record(index=0, inter_token_s=[0.01, 0.01]), record(index=1, inter_chunk_s=[0.04, 0.08])]
    summary = metrics.aggregate(records)
    assert (summary["inter_chunk_s_p50"], summary["inter_token_s_p50"]) == (pytest.approx(0.06), pytest.approx(0.01))
    assert "inter_chunk_s_p50" not in metrics.repeat_samples(records)  # a gate cannot judge what some requests lack


def test_summary_rates_are_the_mean_over_repeats_of_requests_over_wall_span():
    records = back_to_back([[1.0, 1.0], [2.0, 2.0]])
    row = summarize(records).iloc[0]
    assert row["req_s"] == pytest.approx((2 / 2.0 + 2 / 4.0) / 2)
    assert row["output_tok_s"] == pytest.approx((14 / 2.0 + 14 / 4.0) / 2)
    assert row["e2e_s_p90"] == pytest.approx(np.percentile([1, 1, 2, 2], 90))
    assert row["requests"] == 4 and row["repeats"] == 2


def test_warmups_never_enter_the_summary():
    records = back_to_back([[1.0, 1.0]]) + [record(phase="warmup", e2e_s=50.0, started_at=0.0)]
    assert summarize(records).iloc[0]["e2e_s_mean"] == pytest.approx(1.0)


def test_repeat_samples_leave_out_a_metric_that_some_request_lacks():
    records = back_to_back([[1.0], [2.0], [4.0]])
    records[1] = records[1].model_copy(update={"ttft_s": None})
    samples = metrics.repeat_samples(records)
    assert samples["e2e_s_mean"] == pytest.approx([1.0, 2.0, 4.0])
    assert "ttft_s_p90" not in samples and "tpot_s_mean" not in samples


def test_headings_come_from_the_registry_in_the_display_unit():
    assert metrics.heading("ttft_s_p50", "ttft_s_p90") == "TTFT p50 / p90 (s)"
    assert metrics.heading("inter_token_s_p99") == "inter-token p99 (ms)"
    assert metrics.shown_values([record(inter_token_s=[0.002, 0.004])], "inter_token_s_p50") == [pytest.approx(3.0)]


def test_a_new_metric_is_one_registry_entry_that_summary_baseline_and_rules_pick_up(monkeypatch):
    monkeypatch.setattr(metrics, "REGISTRY", dict(metrics.REGISTRY))
    metrics.register(RequestMetric("input_tokens_n", "input tokens", "tokens", Direction.LOWER_IS_BETTER,
                                   lambda r: r.input_tokens, ("max",)))
    records = back_to_back([[1.0], [1.0], [1.0]])
    assert summarize(records).iloc[0]["input_tokens_n_max"] == 300
    assert metrics.repeat_samples(records)["input_tokens_n_max"] == [300, 300, 300]
    assert parse_rule("input_tokens_n_max: +5%").direction is Direction.LOWER_IS_BETTER


def test_registering_a_taken_name_is_refused(monkeypatch):
    monkeypatch.setattr(metrics, "REGISTRY", dict(metrics.REGISTRY))
    with pytest.raises(ValueError, match="ttft_s_p90"):
        metrics.register(RequestMetric("ttft_s", "again", "s", Direction.LOWER_IS_BETTER, lambda r: r.ttft_s, ("p90",)))


def test_statistics_interpolate_percentiles_linearly_and_are_nan_without_data():
    assert metrics.statistic([1, 2, 3, 4, 5], "p50") == 3.0
    assert metrics.statistic([1, 2, 3, 4, 5], "p90") == pytest.approx(4.6)
    assert np.isnan(metrics.statistic([], "mean"))


def test_unknown_statistic_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown statistic"):
        metrics.statistic([1.0], "median")


def test_a_schema_1_baseline_loads_with_its_metrics_renamed(tmp_path):
    path = tmp_path / "old.json"
    backend = {"kind": "transformers", "status": "ok", "repeats": 3, "outputs": {}, "unfair_requests": 0,
               "metrics": {"output_tok_s": [1.0, 2.0, 3.0], "ttft_p90_s": [0.1, 0.2, 0.3], "decode_tok_s": [5.0, 5, 5]}}
    path.write_text(json.dumps({"schema_version": 1, "created_at": "then", "source": "run", "scenario": "s",
                                "workload_hash": "w", "model": {}, "environment": {}, "backends": {"t": backend}}))
    loaded = load_baseline(path).backends["t"].metrics
    assert loaded == {"output_tok_s": [1.0, 2.0, 3.0], "ttft_s_p90": [0.1, 0.2, 0.3], "decode_tok_s_mean": [5.0, 5, 5]}


@pytest.mark.parametrize("former, now", [("ttft_p90_s", "ttft_s_p90"), ("e2e_p99_s", "e2e_s_p99")])  # schema 1, sweeps
def test_a_rule_with_a_former_metric_name_names_the_new_one(former, now):
    with pytest.raises(BenchError, match=rf"now called '{now}'; write '{now}: \+10%'"):
        parse_rule(f"{former}: +10%")


def test_every_consumer_names_metrics_the_registry_publishes():
    from benchbench.cli import PRINTED_METRICS
    from benchbench.gate.rules import default_rules
    from benchbench.report.performance import LATENCY_COLUMNS, TURN_COLUMNS
    from benchbench.report.throughput import METRICS

    named = [*PRINTED_METRICS, *METRICS, *(n for names in (*LATENCY_COLUMNS, *TURN_COLUMNS) for n in names)]
    named += [rule.metric for rule in default_rules() if hasattr(rule, "metric")]
    assert set(named) <= set(metrics.published_names())
    from benchbench.report.load import POINT_COLUMNS

    assert set(POINT_COLUMNS) <= set(metrics.published_names(load=True))


def test_load_only_metrics_are_published_per_point_and_never_in_a_serial_summary():
    serial, load = metrics.published_names(), metrics.published_names(load=True)
    assert {"goodput_req_s", "error_rate", "lag_s_p99"} == set(load) - set(serial)
    assert metrics.split_point(metrics.at_point("ttft_s_p99", "rate=4")) == ("ttft_s_p99", "rate=4")
    assert metrics.split_point("ttft_s_p99") == ("ttft_s_p99", None)
    assert metrics.direction("error_rate") is Direction.LOWER_IS_BETTER
    assert metrics.direction("goodput_req_s") is Direction.HIGHER_IS_BETTER
    serial_records = back_to_back([[1.0], [1.0], [1.0]])
    assert not {"goodput_req_s", "error_rate", "lag_s_p99"} & set(metrics.repeat_samples(serial_records))
