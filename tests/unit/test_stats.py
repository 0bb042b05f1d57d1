"""Percentiles and bootstrap intervals behave as statistics, not just as code."""


import numpy as np
import pytest

from benchbench.results.stats import (
    Interval,
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    bootstrap_ratio_of_sums_ci,
    mean_replicates,
)


def test_mean_interval_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(12345)
    true_mean, trials = 10.0, 400
    covered = 0
    for trial in range(trials):
        samples = rng.normal(true_mean, 2.0, size=30)
        covered += bootstrap_mean_ci(samples, resamples=2000, seed=trial).contains(true_mean)
    assert 0.90 <= covered / trials <= 0.98


def test_ratio_interval_covers_the_true_ratio_at_about_the_nominal_rate():
    rng = np.random.default_rng(54321)
    trials, covered = 400, 0
    for trial in range(trials):
        baseline = rng.gamma(shape=20.0, scale=5.0, size=30)  # mean 100
        candidate = rng.gamma(shape=20.0, scale=6.5, size=30)  # mean 130
        covered += bootstrap_ratio_ci(baseline, candidate, resamples=2000, seed=trial).contains(1.3)
    assert 0.90 <= covered / trials <= 0.98


def test_ten_skewed_samples_give_a_mean_interval_that_is_not_too_narrow():
    # A percentile or BCa interval covers about 90% here (benchmarks/bootstrap_coverage.py).
    rng = np.random.default_rng(777)
    trials, covered = 400, 0
    for trial in range(trials):
        samples = rng.gamma(shape=4.0, scale=1.0, size=10)  # mean 4, skewness 1
        covered += bootstrap_mean_ci(samples, resamples=2000, seed=trial).contains(4.0)
    assert covered / trials >= 0.925


def test_same_seed_gives_the_same_interval_and_another_seed_a_different_one():
    samples = [3.1, 2.9, 3.4, 3.0, 3.3, 2.7, 3.8, 3.2, 2.6, 3.0, 3.5, 2.9]
    assert bootstrap_mean_ci(samples, seed=7) == bootstrap_mean_ci(samples, seed=7)
    assert bootstrap_mean_ci(samples, seed=7) != bootstrap_mean_ci(samples, seed=8)


def test_ratio_is_candidate_mean_over_baseline_mean():
    result = bootstrap_ratio_ci([2.0, 2.0, 2.0], [3.0, 3.0, 3.0])
    assert result.estimate == pytest.approx(1.5)
    assert result.low == pytest.approx(1.5) and result.high == pytest.approx(1.5)


def test_three_samples_get_students_t_interval_reaching_beyond_their_range():
    result = bootstrap_mean_ci([1.0, 2.0, 6.0])
    se = np.std([1.0, 2.0, 6.0], ddof=1) / np.sqrt(3)
    assert result.estimate == pytest.approx(3.0)
    assert (result.low, result.high) == pytest.approx((3.0 - 4.303 * se, 3.0 + 4.303 * se), rel=1e-3)


def test_three_repeats_still_show_a_thirtyfold_slowdown_at_99_percent():
    # Bootstrap-t from three samples is erratic (intervals from 1e-9 to 1e5 here); Student's t is not.
    rng = np.random.default_rng(0)
    for _ in range(20):
        baseline, slowed = 100 * (1 + 0.1 * rng.standard_normal(3)), 3 * (1 + 0.1 * rng.standard_normal(3))
        assert bootstrap_ratio_ci(baseline, slowed, confidence=0.99).high < 0.2


def test_a_single_sample_has_an_estimate_but_no_interval():
    result = bootstrap_mean_ci([4.2])
    assert result.estimate == 4.2 and not result.defined
    assert result.format() == "4.20"


def test_ratio_of_sums_weights_by_denominator():
    # 10 tokens in 1 s and 30 tokens in 3 s: 10 tok/s overall, whatever the resample.
    result = bootstrap_ratio_of_sums_ci([10, 30], [1.0, 3.0])
    assert result.estimate == pytest.approx(10.0)
    assert result.low == pytest.approx(10.0) and result.high == pytest.approx(10.0)


def test_ratio_of_two_estimates_is_their_quotient_with_a_positive_interval():
    rng = np.random.default_rng(0)
    fast = mean_replicates([200.0, 210.0, 190.0, 205.0], 2000, rng, log=True)
    slow = mean_replicates([100.0, 104.0, 97.0, 99.0], 2000, rng, log=True)
    ratio = fast.over(slow).interval()
    assert ratio.estimate == pytest.approx(805 / 400)
    assert 0 < ratio.low < ratio.estimate < ratio.high


def test_interval_formats_with_significant_digits():
    assert Interval(2.6123, 2.4, 2.83).format(suffix="x") == "2.61x [2.40, 2.83]"
    assert Interval(1234.5, 1200.0, 1270.2).format() == "1234 [1200, 1270]"


def test_empty_samples_are_a_programming_error():
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


def test_many_samples_resample_in_bounded_chunks_with_the_same_answer_each_time():
    samples = np.random.default_rng(3).exponential(2.0, size=20_000)
    first = bootstrap_mean_ci(samples, resamples=500, seed=1)
    assert first == bootstrap_mean_ci(samples, resamples=500, seed=1)
    assert first.low < samples.mean() < first.high and first.high - first.low < 0.2
