"""A load point's arithmetic: rates over the point's wall span, goodput, the SLO verdict, the
client-limited flag, and the sustained-rate headline."""

from __future__ import annotations

import pytest

from benchbench.results.load import LoadFields, PointRequest, meets_slo, summarize_point, sustained


def request(sent: float, done: float, ttft: float, tpot: float, *, kind="concurrency", value=2.0, due=None,
            lag=None, status="ok", tokens=10, repeat=0) -> PointRequest:  # fmt: skip
    load = LoadFields(point=f"{kind}={value:g}", point_kind=kind, point_value=value, due_s=sent if due is None else due,
                      sent_s=sent, lag_s=lag, in_flight_at_send=1, status=status)  # fmt: skip
    return PointRequest(load, repeat, done, tokens if status == "ok" else 0, ttft if status == "ok" else None, tpot)


def test_rates_come_from_the_points_wall_span_and_count_only_answered_requests():
    requests = [request(0.0, 1.0, 0.2, 0.05), request(0.5, 2.0, 0.3, 0.05), request(1.0, 4.0, 0.1, 0.05, status="error")]
    summary = summarize_point(requests)
    assert summary.achieved_req_s == pytest.approx(2 / 4.0)
    assert summary.output_tok_s == pytest.approx(20 / 4.0)
    assert (summary.requests, summary.errors, summary.error_rate) == (3, 1, pytest.approx(1 / 3))
    assert summary.goodput_req_s is None and summary.within_slo is None


def test_repeats_of_a_point_each_start_their_own_clock_so_their_spans_add_up():
    # two repeats of 1 s each, both timed from their own start: 4 answers over 2 s, not over 1 s
    requests = [request(0.0, 0.5, 0.1, 0.01, repeat=r) for r in (0, 1)] + [request(0.5, 1.0, 0.1, 0.01, repeat=r) for r in (0, 1)]
    assert summarize_point(requests).achieved_req_s == pytest.approx(4 / 2.0)
    rate = [request(i * 0.25, i * 0.25 + 0.1, 0.05, 0.01, kind="rate", value=4, repeat=r) for r in (0, 1) for i in range(4)]
    assert summarize_point(rate).sent_req_s == pytest.approx(4.0)


def test_goodput_counts_requests_meeting_every_threshold():
    requests = [request(0, 1, 0.2, 0.05), request(0, 1, 0.6, 0.05), request(0, 2, 0.2, 0.2), request(1, 2, 0.1, 0.01)]
    summary = summarize_point(requests, ttft_limit_s=0.5, tpot_limit_s=0.1)
    assert summary.goodput_req_s == pytest.approx(2 / 2.0)
    assert summary.achieved_req_s == pytest.approx(4 / 2.0)
    assert summary.within_slo is False  # p99 TTFT 0.6 > 0.5
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
    slow = [request(i * 0.5, i * 0.5 + 0.1, 0.05, 0.01, kind="rate", value=4, due=i * 0.25, lag=0.0) for i in range(8)]
    assert summarize_point(slow).sent_req_s == pytest.approx(2.0)
    assert summarize_point(slow).client_limited is True


def test_the_headline_is_the_highest_achieved_rate_within_the_slo():
    def point(value, ttft):
        return summarize_point([request(0, 1 / value, ttft, 0.01, value=value)], ttft_limit_s=0.5)

    points = [point(1, 0.1), point(4, 0.3), point(8, 0.9)]
    assert sustained(points).point == "concurrency=4"
    assert sustained([point(8, 0.9)]) is None
