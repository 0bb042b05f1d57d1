"""A run folder keeps its built workload; readers get the same requests, or a refusal naming the fix."""

from pathlib import Path

import pytest
from PIL import Image

from benchbench.config.scenario import load_scenario, parse_scenario
from benchbench.errors import BenchError
from benchbench.workload.build import build_workload
from benchbench.workload.store import WORKLOAD_DIR, load_workload, save_workload


def test_a_saved_workload_reads_back_identical(tmp_path):
    workload = build_workload(load_scenario("multi-turn"))
    save_workload(tmp_path, workload)
    loaded = load_workload(tmp_path, workload.hash)
    assert loaded == workload and loaded.hash == workload.hash
    assert [i.data for r in loaded.requests for i in r.images] == [i.data for r in workload.requests for i in r.images]


def test_files_cycled_over_requests_are_stored_once(tmp_path):
    # cache: warm, because a cold cache sends every reuse of a file as a fresh variant
    Image.new("RGB", (64, 48), "red").save(tmp_path / "a.png")
    scenario = parse_scenario({"name": "files", "images": {"files": [str(tmp_path / "a.png")]}, "cache": "warm",
                               "prompt": {"turns": [{"user": "<image>\nWhat?"}]}, "requests": 4, "max_new_tokens": 2},
                              source="test")
    workload = build_workload(scenario)
    save_workload(tmp_path / "run", workload)
    assert len(list((tmp_path / "run" / WORKLOAD_DIR / "images").iterdir())) == 1
    assert load_workload(tmp_path / "run", workload.hash) == workload


def test_changed_image_bytes_are_refused_in_one_line(tmp_path):
    workload = build_workload(load_scenario("10x-image").with_overrides(requests=2))
    save_workload(tmp_path, workload)
    image = next((tmp_path / WORKLOAD_DIR / "images").iterdir())
    image.write_bytes(image.read_bytes()[:-1] + b"\0")
    with pytest.raises(BenchError, match=r"^run folder .*: its saved workload cannot be read \(images/.* does not match its SHA-256\); start a new run$"):
        load_workload(tmp_path, workload.hash)


def test_a_workload_other_than_the_manifest_names_is_refused(tmp_path):
    workload = build_workload(load_scenario("10x-image").with_overrides(requests=2))
    save_workload(tmp_path, workload)
    with pytest.raises(BenchError, match="does not match the manifest's hash; start a new run"):
        load_workload(tmp_path, "0" * 64)


def test_a_folder_without_a_saved_workload_is_refused(tmp_path: Path):
    with pytest.raises(BenchError, match="its saved workload cannot be read"):
        load_workload(tmp_path, "0" * 64)
