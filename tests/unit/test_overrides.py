"""Run settings override a scenario the way the command line does, validated like a file."""

import pytest

from benchbench.config.overrides import ScenarioOverrides, apply_overrides
from benchbench.config.scenario import load_scenario
from benchbench.errors import BenchError, ScenarioError


def test_counts_timeouts_and_quantisation_override_the_scenario():
    scenario = apply_overrides(load_scenario("10x-image"), ScenarioOverrides(
        requests=3, warmup=0, request_timeout_s=5, load_4bit=True))
    assert (scenario.requests, scenario.warmup, scenario.timeouts.request_s) == (3, 0, 5)
    assert scenario.timeouts.load_s == load_scenario("10x-image").timeouts.load_s  # the others kept
    assert scenario.backends[0].options["load_4bit"] is True


def test_backends_replace_the_list_and_the_url_goes_to_server_kinds_only():
    scenario = apply_overrides(load_scenario("10x-image"), ScenarioOverrides(
        backends=("transformers", "openai"), url="http://127.0.0.1:9", backend_options=("openai.dialect=vllm",)))
    assert [(b.kind, b.options) for b in scenario.backends] == [
        ("transformers", {}), ("openai", {"url": "http://127.0.0.1:9", "dialect": "vllm"})]


def test_a_url_without_backends_is_refused():
    with pytest.raises(BenchError, match="--url goes with --backend openai or --backend lightllm"):
        apply_overrides(load_scenario("10x-image"), ScenarioOverrides(url="http://127.0.0.1:9"))


def test_an_option_for_a_backend_not_in_the_run_names_the_backends():
    with pytest.raises(BenchError, match=r"no backend named 'lmdeploy' in this run \(backends: transformers\)"):
        apply_overrides(load_scenario("10x-image"), ScenarioOverrides(backends=("transformers",),
                                                                      backend_options=("lmdeploy.tp=2",)))


def test_an_invalid_count_is_a_scenario_error():
    with pytest.raises(ScenarioError, match="command-line overrides"):
        apply_overrides(load_scenario("10x-image"), ScenarioOverrides(requests=0))
