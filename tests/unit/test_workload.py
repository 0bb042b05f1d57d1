"""The workload: deterministic, hashed, identical for every engine."""

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from benchbench.errors import ImageError
from benchbench.config.scenario import load_scenario
from benchbench.workload.build import build_workload

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_same_scenario_gives_same_workload_hash_and_images():
    first, second = build_workload(load_scenario("10x-image")), build_workload(load_scenario("10x-image"))
    assert first.hash == second.hash
    assert [i.sha256 for r in first.requests for i in r.images] == [i.sha256 for r in second.requests for i in r.images]


def test_10x_image_is_one_warmup_then_ten_distinct_images_with_varying_tile_grids():
    workload = build_workload(load_scenario("10x-image"))
    assert [r.phase for r in workload.requests] == ["warmup"] + ["measure"] * 10
    measured = workload.measured
    assert len({r.images[0].sha256 for r in workload.requests}) == 11  # no image repeats: no cache hits
    assert len({r.tiles_planned for r in measured}) >= 3
    assert all(r.image_tokens_planned == r.tiles_planned * 256 for r in measured)


def test_changing_the_prompt_or_seed_changes_the_hash():
    base = load_scenario("10x-image")
    assert build_workload(base.with_overrides(seed=1)).hash != build_workload(base).hash
    assert build_workload(base.with_overrides(max_new_tokens=8)).hash != build_workload(base).hash


def test_tiles_sweep_runs_every_request_at_every_budget():
    workload = build_workload(load_scenario("tiles-sweep"))
    budgets = {r.tiling.max_num for r in workload.measured}
    assert budgets == {1, 6, 12}
    assert {r.tiles_planned for r in workload.measured if r.tiling.max_num == 1} == {1}


def test_multi_turn_second_turn_repeats_the_image_with_the_fixed_history():
    workload = build_workload(load_scenario("multi-turn"))
    first, second = workload.measured[0], workload.measured[1]
    assert first.request_id.endswith("t1") and second.request_id.endswith("t2")
    assert second.images == first.images
    assert [m.role for m in second.messages] == ["user", "assistant", "user"]


def test_multi_image_requests_carry_two_images():
    assert all(len(r.images) == 2 for r in build_workload(load_scenario("multi-image")).requests)


def test_unreadable_image_file_is_a_bench_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    scenario = load_scenario("10x-image").with_overrides(images={"files": [str(tmp_path / "bad.png")]})
    with pytest.raises(ImageError, match="bad.png"):
        build_workload(scenario)


def test_file_images_keep_their_bytes(tmp_path):
    Image.new("RGB", (640, 480), (10, 20, 30)).save(tmp_path / "a.png")
    scenario = load_scenario("10x-image").with_overrides(images={"files": [str(tmp_path / "a.png")]}, requests=2)
    workload = build_workload(scenario)
    assert workload.measured[0].images[0].data == (tmp_path / "a.png").read_bytes()
    assert workload.measured[0].tiles_planned == 7


IMAGE_READ_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # a reader that does not stop fails fast, not the machine
from benchbench.config.scenario import load_scenario
from benchbench.errors import ImageError
from benchbench.workload.build import build_workload
try:
    build_workload(load_scenario("10x-image").with_overrides(images={"files": [sys.argv[1]]}, requests=1))
except ImageError as exc:
    print(exc)
"""


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder", "over-cap"])
def test_image_paths_that_are_not_bounded_regular_files_are_refused_without_reading(tmp_path, kind):
    """/dev/zero reports size 0 and never ends, a FIFO blocks until written: both bypassed a stat-based cap."""
    path = tmp_path / "image.png"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        with path.open("wb") as handle:  # sparse: 64 MiB + 1 byte without writing them
            handle.truncate(64 * 1024 * 1024 + 1)
    child = subprocess.run([sys.executable, "-c", IMAGE_READ_CHILD, str(path)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    expected = {"dev-zero": "not a regular file", "fifo": "not a regular file", "folder": "is a folder",
                "over-cap": "larger than the 67,108,864-byte limit"}[kind]
    assert child.stdout.startswith(f"image {path}: {expected}"), child.stderr[-500:]
