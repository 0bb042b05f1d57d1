"""A load point's arithmetic, from the metric registry over the point's records: rates over each
repeat's wall span, goodput, error rate, the SLO verdict, the client-limited flag, the
sustained-rate headline, summary.csv's rows per point and the baseline's NAME@POINT samples."""

from __future__ import annotations

import numpy as np
import pytest

from benchbench.results import metrics
from benchbench.results.load import meets_slo, point_samples, summarize_point, sustained
from benchbench.results.records import Fairness, LoadFields, RecordSink, RequestRecord, read_records
from benchbench.results.summary import summarize

T0 = 1000.0


def request(sent: float, done: float, ttft: float, tpot: float, *, kind="concurrency", value=2.0, due=None,
            lag=None, status="ok", tokens=10, repeat=0, within=None, backend="b") -> RequestRecord:  # fmt: skip
    """A measured record sent ``sent`` s after its repeat started, answered at ``done``, whose TPOT is ``tpot``."""
    load = LoadFields(point=f"{kind}={value:g}", point_kind=kind, point_value=value, due_s=sent if due is None else due,
                      sent_s=sent, lag_s=lag, in_flight_at_send=1, status=status, within_slo=within)  # fmt: skip
    ok = status == "ok"
    e2e = done - sent
    return RequestRecord(
        backend=backend, backend_kind="openai", phase="measure", request_id=f"r{sent}-{done}", repeat=repeat,
        started_at=T0 + sent, max_tiles=6, tiles_planned=1, tiles=1, image_tokens_planned=256, image_tokens=256,
        input_tokens=300, max_new_tokens=tokens, output_tokens=tokens if ok else 0, preprocess_s=0.0,
        ttft_s=ttft if ok else None, decode_s=None, e2e_s=e2e, decode_tok_s=None, preprocess_in_ttft=False, text="x",
        fairness=Fairness(ok=True), load=load,
    )  # fmt: skip


def tpot_of(ttft: float, e2e: float, tokens: int = 10) -> float:
    return (e2e - ttft) / (tokens - 1)


def test_rates_come_from_the_points_wall_span_and_count_only_answered_requests():
    requests = [request(0.0, 1.0, 0.2, 0.05), request(0.5, 2.0, 0.3, 0.05), request(1.0, 4.0, 0.1, 0.05, status="error")]
    summary = summarize_point(requests)
    assert summary.achieved_req_s == summary.metrics["req_s"] == pytest.approx(2 / 4.0)
    assert summary.metrics["output_tok_s"] == pytest.approx(20 / 4.0)
    assert (summary.requests, summary.errors, summary.metrics["error_rate"]) == (3, 1, pytest.approx(1 / 3))
    assert summary.metrics["goodput_req_s"] is None and summary.within_slo is None


def test_repeats_of_a_point_each_start_their_own_clock_and_the_rate_is_their_mean():
    # repeat 0: 2 answers in 1 s; repeat 1: 2 answers in 2 s (each repeat on its own clock)
    requests = [request(0.0, 0.5, 0.1, 0.01, repeat=0), request(0.5, 1.0, 0.1, 0.01, repeat=0),
                request(0.0, 1.0, 0.1, 0.01, repeat=1), request(1.0, 2.0, 0.1, 0.01, repeat=1)]  # fmt: skip
    summary = summarize_point(requests)
    assert summary.samples["req_s"] == pytest.approx([2.0, 1.0])
    assert summary.achieved_req_s == pytest.approx(1.5)
    rate = [request(i * 0.25, i * 0.25 + 0.1, 0.05, 0.01, kind="rate", value=4, repeat=r) for r in (0, 1) for i in range(4)]
    assert summarize_point(rate).sent_req_s == pytest.approx(4.0)


def test_percentiles_are_the_registrys_pooled_over_the_points_requests():
    ttfts = [0.1, 0.2, 0.3, 0.9]
    requests = [request(i, i + 1.0, ttft, 0.0, repeat=i % 2) for i, ttft in enumerate(ttfts)]
    summary = summarize_point(requests)
    assert summary.metrics["ttft_s_p99"] == pytest.approx(np.percentile(ttfts, 99))
    assert summary.metrics["ttft_s_p99"] == metrics.metric("ttft_s").aggregate(requests, "p99")
    assert summary.metrics["tpot_s_p50"] == pytest.approx(np.percentile([tpot_of(t, 1.0) for t in ttfts], 50))


def test_goodput_counts_answered_requests_the_recorder_marked_within_the_slo():
    requests = [request(0, 1, 0.2, 0.05, within=True), request(0, 1, 0.6, 0.05, within=False),
                request(0, 2, 0.2, 0.2, within=False), request(1, 2, 0.1, 0.01, within=True)]  # fmt: skip
    summary = summarize_point(requests, ttft_limit_s=0.5, tpot_limit_s=1.0)
    assert summary.metrics["goodput_req_s"] == pytest.approx(2 / 2.0)
    assert summary.achieved_req_s == pytest.approx(4 / 2.0)
    assert summary.within_slo is False  # p99 TTFT ~0.6 > 0.5
    assert summarize_point(requests, ttft_limit_s=1.0, tpot_limit_s=0.5).within_slo is True


def test_a_point_over_the_error_rate_limit_is_not_within_the_slo():
    requests = [request(0, 1, 0.1, 0.01), request(0, 1, 0.1, 0.01, status="timeout")]
    assert summarize_point(requests, ttft_limit_s=1.0, max_error_rate=0.6).within_slo is True
    assert summarize_point(requests, ttft_limit_s=1.0, max_error_rate=0.4).within_slo is False


def test_unknown_latency_fails_the_slo_rather_than_passing_it():
    assert meets_slo(None, 0.01, 1.0, None) is False
    assert meets_slo(None, 0.01, None, 0.1) is True


def test_client_lag_over_a_millisecond_or_a_short_send_rate_flags_the_point():
    on_time = [request(i * 0.25, i * 0.25 + 0.1, 0.05, 0.01, kind="rate", value=4, lag=0.0002) for i in range(8)]
    assert summarize_point(on_time).client_limited is False
    assert summarize_point(on_time).sent_req_s == pytest.approx(4.0)
    laggy = on_time[:-1] + [request(1.75, 1.9, 0.05, 0.01, kind="rate", value=4, lag=0.004)]
    assert summarize_point(laggy).client_limited is True
    assert summarize_point(laggy).metrics["lag_s_p99"] > 0.001
    slow = [request(i * 0.5, i * 0.5 + 0.1, 0.05, 0.01, kind="rate", value=4, due=i * 0.25, lag=0.0) for i in range(8)]
    assert summarize_point(slow).sent_req_s == pytest.approx(2.0)
    assert summarize_point(slow).client_limited is True


def test_the_headline_is_the_highest_achieved_rate_within_the_slo():
    def point(value, ttft):
        return summarize_point([request(0, 1 / value, ttft, 0.01, value=value)], ttft_limit_s=0.5)

    points = [point(1, 0.1), point(4, 0.3), point(8, 0.9)]
    assert sustained(points).point == "concurrency=4"
    assert sustained([point(8, 0.9)]) is None


def two_points() -> list[RequestRecord]:
    """concurrency=1 slow and steady, concurrency=8 fast with one error, 3 repeats each."""
    records = [request(i, i + 1.0, 0.1, 0.0, value=1, repeat=r) for r in range(3) for i in range(2)]
    records += [request(0.0, 0.5, 0.4, 0.0, value=8, repeat=r, status="error" if r == 2 and i == 0 else "ok")
                for r in range(3) for i in range(4)]  # fmt: skip
    return records


def test_summary_csv_has_one_row_per_backend_and_point_under_load():
    table = summarize(two_points())
    assert list(table["point"]) == ["concurrency=1", "concurrency=8"] and list(table["backend"]) == ["b", "b"]
    one, eight = table.iloc[0], table.iloc[1]
    assert one["req_s"] == pytest.approx(1.0) and one["requests"] == 6 and one["repeats"] == 3
    assert eight["req_s"] == pytest.approx((8 + 8 + 6) / 3) and eight["error_rate"] == pytest.approx(1 / 12)
    assert {"goodput_req_s", "error_rate", "lag_s_p99", "ttft_s_p99"} <= set(table.columns)


def test_a_serial_runs_summary_keeps_its_rows_and_columns():
    serial = [r.model_copy(update={"load": None}) for r in two_points()]
    table = summarize(serial)
    assert len(table) == 1 and "point" not in table.columns
    assert list(table.columns) == ["backend", "requests", "repeats", "unfair_requests", *metrics.published_names()]
    assert not {"goodput_req_s", "error_rate", "lag_s_p99"} & set(table.columns)


def test_baseline_samples_are_per_point_under_name_at_point():
    samples = point_samples(two_points())
    assert samples["req_s@concurrency=1"] == pytest.approx([1.0, 1.0, 1.0])
    assert samples["error_rate@concurrency=8"] == pytest.approx([0.0, 0.0, 0.25])
    assert samples["ttft_s_p99@concurrency=8"] == pytest.approx([0.4, 0.4, 0.4])
    assert "req_s" not in samples and "goodput_req_s@concurrency=1" not in samples  # no SLO, no goodput


def test_a_resumed_points_earlier_attempt_is_superseded_on_read_and_kept_in_the_file(tmp_path):
    first, again = RecordSink(tmp_path, session=0), RecordSink(tmp_path, session=1)
    for record in [request(0, 1, 0.1, 0.0, value=1), request(0, 1, 0.1, 0.0, value=2)]:
        first.append(record)  # concurrency=1 finished, concurrency=2 cut short after one request
    first.close()
    for record in [request(0, 1, 0.1, 0.0, value=2), request(1, 2, 0.1, 0.0, value=2)]:
        again.append(record)  # the resume reran concurrency=2 from its start
    again.close()
    stands = read_records(tmp_path)
    assert [(r.load.point, r.session) for r in stands] == [("concurrency=1", 0), ("concurrency=2", 1), ("concurrency=2", 1)]
    assert summarize(stands).set_index("point").loc["concurrency=2", "requests"] == 2  # not 3: nothing counted twice
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 4
