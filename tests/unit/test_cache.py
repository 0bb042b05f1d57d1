"""Cache state as a declared part of the workload: cold repeats carry fresh image bytes with the
same tiles; warm runs send every measured request once, untimed, first."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from benchbench.config.scenario import parse_scenario
from benchbench.workload.build import build_workload
from benchbench.workload.cache import cache_statement


def workload(cache: str | None = None, files: list[str] | None = None, requests: int = 2, repeats: int = 3):
    data = {"name": "cache", "images": {"files": files} if files else {"synthetic": {"sizes": [[640, 480]]}},
            "prompt": {"turns": [{"user": "<image>\nWhat is shown?"}]}, "requests": requests, "warmup": 1,
            "repeats": repeats, "max_new_tokens": 4}  # fmt: skip
    if cache:
        data["cache"] = cache
    return build_workload(parse_scenario(data, source="test"))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_cold_repeats_send_fresh_bytes_with_the_same_tiles_and_nearly_the_same_pixels():
    cold = workload()
    repeats = [cold.measured_for(repeat) for repeat in range(3)]
    digests = {request.images[0].sha256 for requests in repeats for request in requests}
    assert len(digests) == 2 * 3  # two requests, three repeats: never the same bytes twice
    for first, later in zip(repeats[0], repeats[2]):
        assert later.tiles_planned == first.tiles_planned and later.request_id == first.request_id
        changed = np.abs(pixels(later.images[0].data) - pixels(first.images[0].data))
        assert changed.max() <= 1 and np.count_nonzero(changed) <= 24


def test_a_reused_image_file_is_a_variant_in_cold_mode(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (500, 300), (10, 20, 30)).save(path)
    cold = workload(files=[str(path)], requests=3, repeats=1)
    digests = [request.images[0].sha256 for request in cold.warmup + cold.measured]
    assert len(set(digests)) == 4  # warmup and three measured uses of one file


def test_warm_sends_each_measured_request_once_untimed_before_measuring():
    warm = workload("warm")
    warming = [request for request in warm.warmup if request.request_id.startswith("c")]
    assert [r.request_id for r in warming] == ["c000", "c001"]
    assert [r.images for r in warming] == [r.images for r in warm.measured]
    assert warm.measured_for(2) == warm.measured


def test_the_default_cold_cache_keeps_existing_scenario_hashes_and_warm_changes_them():
    base = {"name": "h", "images": {"synthetic": {"sizes": [[64, 64]]}}, "prompt": {"turns": [{"user": "<image>\nHi"}]},
            "requests": 1, "max_new_tokens": 1}  # fmt: skip
    plain, cold = parse_scenario(base, "t"), parse_scenario({**base, "cache": "cold"}, "t")
    assert plain.content_hash() == cold.content_hash() != parse_scenario({**base, "cache": "warm"}, "t").content_hash()


def test_the_report_line_names_the_state_and_the_multi_turn_purpose():
    assert cache_statement("cold", False).startswith("cold: every repeat")
    assert "on purpose (multi-turn)" in cache_statement("cold", True)
    assert cache_statement("warm", False).startswith("warm: every measured request was sent once")


def test_internvl_default_renders_internvls_own_system_message_for_every_engine():
    from benchbench.workload.prompt import render_prompt

    data = {"name": "sys", "images": {"synthetic": {"sizes": [[64, 64]]}},
            "images_per_request": 0, "prompt": {"system": "internvl-default", "turns": [{"user": "Hi"}]}, "requests": 1, "max_new_tokens": 1}  # fmt: skip
    request = build_workload(parse_scenario(data, source="test")).measured[0]
    assert request.system_prompt.startswith("你是书生·万象，英文名是InternVL")
    assert render_prompt(request, lambda *_: "").startswith("<|im_start|>system\n你是书生·万象，英文名是InternVL，是由上海人工智能实验室")
