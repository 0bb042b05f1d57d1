"""Load points end to end in process: the tiny model through the load runner into records, the
workload's load plan and hash, and the command-line load flags."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.config.overrides import ScenarioOverrides, apply_overrides
from benchbench.config.scenario import load_scenario
from benchbench.errors import ScenarioError
from benchbench.config.load import LoadSpec
from benchbench.execution.load_runner import finished_points, run_workload_load
from benchbench.results.records import standing
from benchbench.workload.build import build_workload
from benchbench.workload.store import load_workload, save_workload


def small(name: str = "serve-sweep", **load):
    scenario = load_scenario(name).with_overrides(requests=2, warmup=1, repeats=2, max_new_tokens=2)
    return apply_overrides(scenario, ScenarioOverrides(**load)) if load else scenario


@pytest.fixture(scope="module")
def batched(tiny_model_dir):
    backend = TransformersBackend(TransformersOptions(max_batch_size=8),
                                  BackendContext("batched", tiny_model_dir, "auto", "cpu", Path("."), 0))  # fmt: skip
    backend.load()
    return backend


def test_each_point_records_its_warmups_and_each_repeat_with_load_fields(batched):
    workload = build_workload(small(concurrency=[1, 2]))
    measurements = []
    points = run_workload_load(batched, workload, measurements.append)
    records = [m.record() for m in measurements]
    assert [p.label for p in points] == ["concurrency=1", "concurrency=2"]
    phases = [(r.load.point, r.phase, r.repeat) for r in records]
    assert phases.count(("concurrency=2", "warmup", 0)) + phases.count(("concurrency=2", "warmup", 1)) == 2
    assert sorted(p for p in phases if p[1] == "measure") == sorted(
        (point, "measure", repeat) for point in ("concurrency=1", "concurrency=2") for repeat in (0, 1) for _ in range(2)
    )
    for record in records:
        assert record.fairness.ok and record.output_tokens == 2
        assert record.load.within_slo is not None and record.load.status == "ok"
        # a request's time counts from its arrival: preprocessing, wait and TTFT add up within e2e
        assert record.preprocess_s + record.ttft_s <= record.e2e_s
    at_two = [r for r in records if r.load.point == "concurrency=2" and r.phase == "measure"]
    assert {r.load.batch_size for r in at_two} == {2}


def test_a_sweep_runs_serial_throughput_then_rates_between_them(batched):
    workload = build_workload(small(sweep=2))
    points = run_workload_load(batched, workload, lambda measurement: None)
    labels = [p.label for p in points]
    assert labels[:2] == ["serial", "throughput"] and len(labels) == 4
    assert all(label.startswith("rate=") for label in labels[2:])


def interrupted(records, cut_at: str, keep: int):
    """The records on disk when a run stopped ``keep`` measured requests into point ``cut_at``."""
    kept, measured_at_cut = [], 0
    for record in records:
        if record.load.point == cut_at and record.phase == "measure":
            if measured_at_cut == keep:
                break
            measured_at_cut += 1
        kept.append(record)
    return kept


def resumed(backend, workload, earlier):
    """A resume's new records (session 1) and what stands on disk afterwards."""
    measurements = []
    points = run_workload_load(backend, workload, measurements.append, earlier)
    new = [m.record().model_copy(update={"session": 1}) for m in measurements]
    return points, new, standing([*earlier, *new])


def test_resume_skips_finished_points_and_reruns_an_unfinished_one_from_its_start(batched):
    workload = build_workload(small(concurrency=[1, 2, 4]))
    first = []
    run_workload_load(batched, workload, first.append)
    on_disk = interrupted([m.record() for m in first], "concurrency=2", keep=3)  # repeat 0 done, repeat 1 half
    points, new, stands = resumed(batched, workload, on_disk)
    assert [p.label for p in points] == ["concurrency=1", "concurrency=2", "concurrency=4"]
    assert {r.load.point for r in new} == {"concurrency=2", "concurrency=4"}  # concurrency=1 was not run again
    assert sum(r.load.point == "concurrency=2" and r.phase == "warmup" for r in new) == 2  # its warmups rerun too
    measured = Counter((r.load.point, r.repeat, r.session) for r in stands if r.phase == "measure")
    assert measured == {("concurrency=1", 0, 0): 2, ("concurrency=1", 1, 0): 2, ("concurrency=2", 0, 1): 2,
                        ("concurrency=2", 1, 1): 2, ("concurrency=4", 0, 1): 2, ("concurrency=4", 1, 1): 2}  # fmt: skip
    assert resumed(batched, workload, stands)[1] == []  # nothing left to run


def test_a_resumed_sweep_keeps_its_rates_from_the_recorded_serial_and_throughput_points(batched):
    workload = build_workload(small(sweep=2))
    first = []
    ran = [p.label for p in run_workload_load(batched, workload, first.append)]
    records = [m.record() for m in first]
    on_disk = interrupted(records, ran[2], keep=1)
    points, new, _ = resumed(batched, workload, on_disk)
    assert [p.label for p in points] == ran  # rates from the recorded points' req_s, not measured again
    assert {r.load.point for r in new} == set(ran[2:])
    assert finished_points(records, workload, LoadSpec(sweep=2)).keys() == set(ran)


def test_the_load_plan_is_part_of_the_workload_hash_and_saved_with_it(tmp_path):
    serial = build_workload(load_scenario("10x-image"))
    assert serial.load is None
    loaded = build_workload(small())
    assert loaded.load["spec"]["concurrency"] == [1, 2, 4, 8] and loaded.load["slo"]["ttft_p99_s"] == 2.0
    other_seed = build_workload(small().with_overrides(seed=1))
    assert loaded.load["schedule"] != other_seed.load["schedule"]
    as_rate = build_workload(small(rate=[1.0]))
    assert as_rate.hash != loaded.hash
    save_workload(tmp_path, loaded)
    assert load_workload(tmp_path, loaded.hash).load == loaded.load


def test_command_line_load_flags_replace_the_scenarios_points():
    scenario = apply_overrides(load_scenario("serve-sweep"), ScenarioOverrides(rate=[1, 2], arrivals="constant"))
    assert (scenario.load.concurrency, scenario.load.rate, scenario.load.arrivals) == (None, [1.0, 2.0], "constant")
    with pytest.raises(ScenarioError, match="not concurrency and rate"):
        apply_overrides(load_scenario("10x-image"), ScenarioOverrides(concurrency=[2], rate=[1]))


def test_a_bad_load_flag_is_a_one_line_error(benchbench_cli):
    result = benchbench_cli("run", "--concurrency", "1,x", "--no-progress", timeout=120)
    assert result.returncode == 2 and "give numbers separated by commas" in result.stderr
    assert "Traceback" not in result.stderr
