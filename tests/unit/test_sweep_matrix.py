"""Sweep files expand into validated cells; every bad input is a one-line SweepError before anything runs."""

from __future__ import annotations

import pytest

from benchbench.config.scenario import parse_scenario
from benchbench.errors import BenchError
from benchbench.sweep.cells import cell_gpus
from benchbench.sweep.matrix import expand
from benchbench.sweep.spec import SweepError, parse_sweep, stored_spec

SCENARIO = """\
name: sweep-unit
images: {synthetic: {sizes: [[896, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe this image."}]}
requests: 2
warmup: 0
max_new_tokens: 4
tiling: {max_num: 2}
"""


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(SCENARIO)
    return str(path)


def plan(scenario_file, **fields):
    return expand(parse_sweep({"scenario": scenario_file, **fields}, source="test"))


def test_axes_cross_into_one_cell_per_combination_with_readable_ids(scenario_file):
    cells = plan(scenario_file, axes={"tiling.max_num": [1, 2], "max_new_tokens": [2, 3, 4]}).cells
    assert [cell.id for cell in cells] == [
        "1-max_num=1-max_new_tokens=2", "2-max_num=1-max_new_tokens=3", "3-max_num=1-max_new_tokens=4",
        "4-max_num=2-max_new_tokens=2", "5-max_num=2-max_new_tokens=3", "6-max_num=2-max_new_tokens=4"]
    assert cells[4].scenario["tiling"]["max_num"] == 2 and cells[4].scenario["max_new_tokens"] == 3
    assert cells[4].scenario["tiling"]["min_num"] == 1  # the rest of the base scenario is kept


def test_backend_option_axis_applies_only_to_that_backend_and_skips_are_listed(scenario_file):
    result = plan(scenario_file, axes={"backend": ["transformers", "lmdeploy"], "lmdeploy.tp": [1, 2]})
    assert [cell.assignments for cell in result.cells] == [
        {"backend": "transformers"}, {"backend": "lmdeploy", "lmdeploy.tp": 1}, {"backend": "lmdeploy", "lmdeploy.tp": 2}]
    assert len(result.skipped) == 1
    skipped = result.skipped[0]
    assert skipped.combination == {"backend": "transformers", "lmdeploy.tp": 2}
    assert skipped.same_as == result.cells[0].id
    assert "lmdeploy.tp does not apply to backend transformers" in skipped.reason
    assert [cell.gpus for cell in result.cells] == [0, 1, 2]
    assert result.cells[2].scenario["backends"] == [{"kind": "lmdeploy", "label": None, "options": {"tp": 2}}]


def test_workload_hash_is_shared_where_the_axes_leave_the_workload_unchanged(scenario_file):
    cells = plan(scenario_file, axes={"transformers.attn_implementation": ["eager", "sdpa"], "max_new_tokens": [2, 3]}).cells
    hashes = {(c.assignments["transformers.attn_implementation"], c.assignments["max_new_tokens"]): c.workload_hash for c in cells}
    assert hashes[("eager", 2)] == hashes[("sdpa", 2)]
    assert hashes[("eager", 3)] == hashes[("sdpa", 3)]
    assert hashes[("eager", 2)] != hashes[("eager", 3)]


def test_fixed_settings_apply_to_every_cell(scenario_file):
    cells = plan(scenario_file, set={"requests": 1, "transformers.placement": "cpu"}, axes={"max_new_tokens": [2, 3]}).cells
    assert all(c.scenario["requests"] == 1 and c.scenario["backends"][0]["options"] == {"placement": "cpu"} for c in cells)


def test_models_are_an_axis(scenario_file):
    cells = plan(scenario_file, model=["/m/InternVL2_5-8B", "/m/InternVL2_5-26B"], axes={"max_new_tokens": [2]}).cells
    assert [cell.model for cell in cells] == ["/m/InternVL2_5-8B", "/m/InternVL2_5-26B"]
    assert cells[1].id == "2-model=InternVL2_5-26B"


@pytest.mark.parametrize("axes, message", [
    ({"max_new_tokenz": [2]}, "sweep axis 'max_new_tokenz': unknown (did you mean 'max_new_tokens'?)"),
    ({"tiling.max_nm": [2]}, "sweep axis 'tiling.max_nm': no scenario field 'max_nm' (did you mean 'max_num'?)"),
    ({"requests.x": [2]}, "scenario field 'requests' has no sub-fields"),
    ({"lmdeploy.tpp": [1]}, "sweep axis 'lmdeploy.tpp': lmdeploy has no option 'tpp' (did you mean 'tp'?)"),
    ({"transformers.placement": ["gpu"]}, "backend 'transformers' (transformers): option 'placement'"),
    ({"backend": ["lmdeploy"], "lmdeploy.tp": [0]}, "sweep cell backend=lmdeploy, lmdeploy.tp=0: backend 'lmdeploy'"),
    ({"tiling.max_num": [0, 2]}, "sweep cell tiling.max_num=0: scenario sweep cell tiling.max_num=0: field 'tiling.max_num'"),
    ({"backend": ["vllm"]}, "unknown backend 'vllm'"),
    ({}, "'axes' is empty, so there is nothing to sweep"),
    ({"max_new_tokens": []}, "sweep axis 'max_new_tokens': no values"),
    ({"max_new_tokens": [2, 2]}, "sweep axis 'max_new_tokens': a value repeats"),
    ({"lmdeploy.tp": [1, 2]}, "sweep axis 'lmdeploy.tp': applies to no cell"),
])
def test_bad_axes_are_one_line_errors_naming_the_axis(scenario_file, axes, message):
    with pytest.raises(BenchError) as error:
        plan(scenario_file, axes=axes)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("fields, message", [
    ({"axes": {"max_new_tokens": [2]}, "executor": "slurm"}, "field 'executor'"),
    ({"axes": {"max_new_tokens": [2]}, "objective": {"maximize": "speed"}}, "unknown metric 'speed'"),
    ({"axes": {"max_new_tokens": [2]}, "objective": {"subject_to": ["ttft_s_p99 < soon"]}}, "constraint 'ttft_s_p99 < soon'"),
    ({"axes": {"max_new_tokens": [2]}, "objective": {"maximize": "goodput"}}, "did you mean goodput_req_s?"),
    ({"axes": {"max_new_tokens": [2]}, "extra": 1}, "field 'extra': unknown field"),
])
def test_bad_sweep_files_are_one_line_errors(scenario_file, fields, message):
    with pytest.raises(SweepError, match="^sweep test: ") as error:
        parse_sweep({"scenario": scenario_file, **fields}, source="test")
    assert message in str(error.value)


def test_objective_reads_its_constraints(scenario_file):
    spec = parse_sweep({"scenario": scenario_file, "axes": {"max_new_tokens": [2]},
                        "objective": {"maximize": "output_tok_s", "subject_to": ["ttft_s_p99 <= 0.5"]}}, source="test")
    assert spec.objective.constraints() == [("ttft_s_p99", "<=", 0.5)]
    assert spec.objective.describe() == "highest output_tok_s with ttft_s_p99 <= 0.5, among fair finished cells"


@pytest.mark.parametrize("objective, message", [
    ({"maximize": "ttft_p99_s"}, "metric 'ttft_p99_s' is now called 'ttft_s_p99'; write 'ttft_s_p99'"),
    ({"subject_to": ["e2e_p50_s <= 2"]}, "constraint 'e2e_p50_s <= 2': metric 'e2e_p50_s' is now called 'e2e_s_p50'; "
                                         "write 'e2e_s_p50 <= 2'"),
])
def test_a_former_metric_name_in_an_objective_is_refused_naming_the_new_one(scenario_file, objective, message):
    with pytest.raises(SweepError) as error:
        parse_sweep({"scenario": scenario_file, "axes": {"max_new_tokens": [2]}, "objective": objective}, source="test")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sweep_folder_written_with_former_names_still_reads_them_renamed(scenario_file):
    stored = {"scenario": scenario_file, "axes": {"max_new_tokens": [2]},
              "objective": {"minimize": "ttft_p50_s", "subject_to": ["e2e_p99_s <= 3"]}}
    objective = stored_spec(stored).objective
    assert (objective.metric, objective.subject_to) == ("ttft_s_p50", ["e2e_s_p99 <= 3"])


@pytest.mark.parametrize("backends, device, gpus", [
    ([{"kind": "transformers"}], None, 0),
    ([{"kind": "transformers"}], "cuda", 1),
    ([{"kind": "transformers", "options": {"placement": "split"}}], "cuda", None),
    ([{"kind": "lmdeploy", "options": {"tp": 4}}], None, 4),
    ([{"kind": "lmdeploy", "options": {"tp": 4}}], "cpu", 0),
    ([{"kind": "openai", "options": {"url": "http://127.0.0.1:8000"}}], "cuda", 0),
    ([{"kind": "transformers", "options": {"placement": "cuda"}}, {"kind": "lightllm", "options": {"tp": 2, "visual_dp": 2}}], None, 2),
])
def test_cell_gpus_come_from_the_backends_options(backends, device, gpus):
    import yaml

    scenario = parse_scenario({**yaml.safe_load(SCENARIO), "backends": backends}, source="test")
    assert cell_gpus(scenario, device) == gpus
