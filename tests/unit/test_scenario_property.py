"""Property: any scenario document gives either a valid run or a BenchError, never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchbench.backends.base import BackendContext
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.errors import BenchError
from benchbench.execution.measure import measure_request
from benchbench.config.scenario import load_scenario, parse_scenario
from benchbench.workload.build import build_workload

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
small_count = st.one_of(st.integers(-2, 3), junk)
size = st.one_of(st.tuples(st.integers(0, 700), st.integers(0, 700)).map(list), junk)
turn_text = st.one_of(st.just("<image>\nWhat is it?"), st.just("no image"), st.just("<image><image>"), junk)

documents = st.fixed_dictionaries(
    {"name": st.one_of(st.just("fuzz"), junk)},
    optional={
        "images": st.one_of(
            st.fixed_dictionaries({"synthetic": st.fixed_dictionaries({"sizes": st.lists(size, max_size=3)})}),
            st.fixed_dictionaries({"files": st.lists(st.sampled_from(["/nonexistent.png", "/etc/hostname"]), max_size=2)}),
            junk,
        ),
        "images_per_request": small_count,
        "prompt": st.one_of(st.fixed_dictionaries({"turns": st.lists(st.fixed_dictionaries({"user": turn_text}), max_size=2)}), junk),
        "requests": small_count,
        "warmup": small_count,
        "repeats": small_count,
        "max_new_tokens": small_count,
        "tiling": st.one_of(st.fixed_dictionaries({}, optional={"max_num": small_count, "min_num": small_count,
                                                                 "sweep_max_num": st.lists(small_count, max_size=2)}), junk),
        "dtype": st.one_of(st.sampled_from(["auto", "float32", "int4"]), junk),
        "backends": st.one_of(st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["transformers", "vllm", ""])}), max_size=2), junk),
        "surprise": junk,
    },
)

VALID = {
    "name": "fuzz",
    "images": {"synthetic": {"sizes": [[448, 448]]}},
    "prompt": {"turns": [{"user": "<image>\nWhat is it?"}]},
    "requests": 1,
    "max_new_tokens": 4,
}
VALID_VALUES = {
    "name": st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True),
    "images": st.lists(st.tuples(st.integers(16, 900), st.integers(16, 900)).map(list), min_size=1, max_size=2)
    .map(lambda sizes: {"synthetic": {"sizes": sizes}}),
    "prompt": st.sampled_from(["<image>\nDescribe.", "Look: <image>"]).map(lambda text: {"turns": [{"user": text}]}),
    "requests": st.integers(1, 3),
    "max_new_tokens": st.integers(1, 6),
    "warmup": st.integers(0, 2),
    "repeats": st.integers(1, 2),
    "tiling": st.integers(1, 4).map(lambda n: {"max_num": n}),
    "dtype": st.sampled_from(["auto", "float32"]),
    "images_per_request": st.just(1),
    "backends": st.just([{"kind": "transformers"}]),
}
one_field_changed = st.sampled_from(sorted(VALID_VALUES)).flatmap(
    lambda field: st.one_of(VALID_VALUES[field], small_count, junk, st.just("DELETE")).map(
        lambda value: {k: v for k, v in {**VALID, field: value}.items() if v != "DELETE"}
    )
)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    context = BackendContext("transformers", tiny_model_dir, "auto", "cpu", Path("."), 0)
    loaded = TransformersBackend(TransformersOptions(), context)
    loaded.load()
    return loaded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=st.one_of(documents, one_field_changed, one_field_changed))
def test_any_document_is_a_valid_run_or_a_bench_error(document, backend):
    try:
        scenario = parse_scenario(document, source="generated")
        workload = build_workload(scenario.with_overrides(requests=1, warmup=0, repeats=1))
    except BenchError as exc:
        assert "\n" not in str(exc) and ("generated" in str(exc) or "image" in str(exc))
        event("bench error")
        return
    event("valid run")
    record = measure_request(backend, workload.measured[0], repeat=0).record()
    assert record.output_tokens == scenario.max_new_tokens and record.fairness.ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_yaml_text_loads_or_is_a_bench_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_scenario(str(path))
    except BenchError as exc:
        assert str(path) in str(exc)
