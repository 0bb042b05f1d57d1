"""Load points from a scenario, seeded arrival schedules and the strategies that release requests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchbench.config.load import LoadSpec
from benchbench.config.scenario import load_scenario, parse_scenario
from benchbench.errors import ScenarioError
from benchbench.workload.arrivals import schedule_hash, send_offsets
from benchbench.execution.strategies import (
    ConcurrentStrategy,
    ConstantRateStrategy,
    GammaStrategy,
    PoissonStrategy,
    SweepProfile,
    SynchronousStrategy,
    ThroughputStrategy,
    strategy_for,
)


def _scenario(**load):
    data = load_scenario("10x-image").model_dump(mode="json")
    return parse_scenario({**data, "load": load}, source="test")


def test_poisson_inter_arrivals_pass_a_ks_test_for_the_asked_rate():
    offsets = send_offsets("poisson", rate=4.0, count=2000, seed=0)
    gaps = np.diff(offsets)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 4.0)).pvalue > 0.01
    # and fails it for a different rate: the test can tell
    assert stats.kstest(gaps, "expon", args=(0, 1 / 6.0)).pvalue < 1e-6


def test_constant_arrivals_are_evenly_spaced_from_zero():
    offsets = send_offsets("constant", rate=8.0, count=50, seed=3)
    assert offsets[0] == 0
    assert np.allclose(np.diff(offsets), 0.125)


def test_gamma_burstiness_below_one_is_burstier_than_poisson_with_the_same_mean():
    poisson = np.diff(send_offsets("poisson", 2.0, 4000, seed=1))
    bursty = np.diff(send_offsets("gamma", 2.0, 4000, seed=1, burstiness=0.25))
    assert abs(bursty.mean() - 0.5) < 0.05 and abs(poisson.mean() - 0.5) < 0.05
    assert bursty.std() > 1.5 * poisson.std()


def test_schedule_is_seeded_and_rates_only_scale_it():
    a = send_offsets("poisson", 2.0, 100, seed=7)
    assert np.array_equal(a, send_offsets("poisson", 2.0, 100, seed=7))
    assert np.allclose(send_offsets("poisson", 4.0, 100, seed=7), a / 2)
    assert schedule_hash("poisson", 100, 7) != schedule_hash("poisson", 100, 8)


def test_no_load_block_is_serial_and_keeps_the_scenario_hash():
    scenario = load_scenario("10x-image")
    assert scenario.load is None
    explicit = parse_scenario(scenario.model_dump(mode="json"), source="test")
    assert explicit.content_hash() == scenario.content_hash()
    assert _scenario(concurrency=[2]).content_hash() != scenario.content_hash()
    (point,) = LoadSpec().points(10, 1)
    assert (point.label, point.max_in_flight, point.requests, point.warmup) == ("serial", 1, 10, 1)


def test_client_processes_change_how_requests_are_sent_not_the_workload():
    from benchbench.workload.build import build_workload

    one, two = (build_workload(_scenario(concurrency=[2], client_processes=n).with_overrides(requests=2)) for n in (1, 2))
    assert (one.load["client_processes"], two.load["client_processes"]) == (1, 2)
    assert "client_processes" not in two.load["spec"] and one.hash == two.hash
    with pytest.raises(ScenarioError, match="client_processes"):
        _scenario(concurrency=[2], client_processes=True)


def test_concurrency_points_warm_up_at_their_own_concurrency():
    points = _scenario(concurrency=[1, 4]).load.points(10, 1)
    assert [(p.label, p.max_in_flight, p.warmup) for p in points] == [("concurrency=1", 1, 1), ("concurrency=4", 4, 4)]


def test_rate_points_carry_arrivals_cap_and_per_point_counts():
    spec = _scenario(rate=[0.5, 2], arrivals="constant", max_in_flight=3, requests=20, warmup=2).load
    points = spec.points(10, 1)
    assert [p.label for p in points] == ["rate=0.5", "rate=2"]
    assert all(p.open_loop and p.max_in_flight == 3 and p.requests == 20 and p.warmup == 2 for p in points)


@pytest.mark.parametrize(
    "load, message",
    [
        ({"concurrency": [1], "rate": [1]}, "not concurrency and rate"),
        ({"rate": [1], "burstiness": 0.5}, "arrivals: gamma"),
        ({"concurrency": [0]}, "between 1 and 4096"),
        ({"rate": [-1]}, "above 0"),
        ({"rate": [1], "requests": 5, "duration_s": 3}, "not both"),
        ({"rate": [1], "arivals": "poisson"}, "load.arivals': unknown field"),
        ({"concurrency": [True]}, "field 'load.concurrency.0': Input should be a valid integer"),
        ({"rate": [1], "requests": True}, "field 'load.requests': Input should be a valid integer"),
        ({"sweep": True}, "field 'load.sweep': Input should be a valid integer"),
        ({"rate": [1], "max_in_flight": True}, "field 'load.max_in_flight': Input should be a valid integer"),
        ({"rate": [1], "warmup": False}, "field 'load.warmup': Input should be a valid integer"),
        ({"rate": [1], "duration_s": float("inf")}, "field 'load.duration_s'"),
    ],
)
def test_bad_load_blocks_are_one_line_errors_naming_the_field(load, message):
    with pytest.raises(ScenarioError, match=message) as caught:
        _scenario(**load)
    assert "\n" not in str(caught.value)


def test_slo_needs_a_threshold():
    data = load_scenario("10x-image").model_dump(mode="json")
    with pytest.raises(ScenarioError, match="ttft_p99_s, tpot_p99_s or both"):
        parse_scenario({**data, "slo": {}}, source="test")


def test_each_point_kind_gets_its_strategy():
    spec = LoadSpec(sweep=3, max_in_flight=8)
    serial, throughput = spec.points(10, 1)
    assert isinstance(strategy_for(serial), SynchronousStrategy) and strategy_for(serial).max_in_flight == 1
    assert isinstance(strategy_for(throughput), ThroughputStrategy)
    assert strategy_for(throughput).max_in_flight == 8
    assert np.array_equal(strategy_for(throughput).due_offsets(4, 0), np.zeros(4))
    (conc,) = LoadSpec(concurrency=[5]).points(10, 1)
    assert isinstance(strategy_for(conc), ConcurrentStrategy) and strategy_for(conc).due_offsets(3, 0) is None
    kinds = {a: type(strategy_for(LoadSpec(rate=[1], arrivals=a).points(10, 1)[0])) for a in ("constant", "poisson", "gamma")}
    assert kinds == {"constant": ConstantRateStrategy, "poisson": PoissonStrategy, "gamma": GammaStrategy}


def test_sweep_rates_lie_evenly_between_serial_and_saturated_throughput():
    profile = SweepProfile(LoadSpec(sweep=3), size=3)
    assert profile.rates_between(2.0, 10.0) == [4.0, 6.0, 8.0]
    points = profile.rate_points(2.0, 10.0, count=10, warmup=1)
    assert [p.label for p in points] == ["rate=4", "rate=6", "rate=8"]
