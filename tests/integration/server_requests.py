"""Helpers shared by the server backends' integration tests: a one-image workload and a timer
that records what a backend reports."""

from __future__ import annotations

from collections.abc import Callable

from benchbench.config.scenario import parse_scenario
from benchbench.workload.build import Workload, build_workload


def one_image_workload(
    max_new_tokens: int, requests: int = 1, warmup: int = 0, max_num: int = 6, question: str = "What is shown?",
    size: tuple[int, int] = (800, 600), load: dict | None = None,
) -> Workload:
    """One image per request: 800x600 by default (InternVL plans 7 tiles at max_num 6)."""
    scenario = parse_scenario(
        {
            "name": "one-image",
            "images": {"synthetic": {"sizes": [list(size)]}},
            "prompt": {"turns": [{"user": f"<image>\n{question}"}]},
            "requests": requests,
            "warmup": warmup,
            "max_new_tokens": max_new_tokens,
            "tiling": {"max_num": max_num},
            **({"load": load} if load else {}),
        },
        source="test",
    )
    return build_workload(scenario)


class RecordingTimer:
    """Keeps the token counts a backend reports; ``on_token(calls so far)`` runs after each."""

    def __init__(self, on_token: Callable[[int], None] | None = None):
        self.counts: list[int] = []
        self.on_token = on_token

    def tokens(self, count: int = 1) -> None:
        self.counts.append(count)
        if self.on_token:
            self.on_token(len(self.counts))


def text_workload(max_new_tokens: int, requests: int) -> Workload:
    """Requests without images: a small body, so a timing test sees the server's delay, not JSON."""
    scenario = parse_scenario(
        {
            "name": "text-only",
            "images": {"synthetic": {"sizes": [[64, 64]]}},
            "images_per_request": 0,
            "prompt": {"turns": [{"user": "Say something."}]},
            "requests": requests,
            "warmup": 0,
            "max_new_tokens": max_new_tokens,
        },
        source="test",
    )
    return build_workload(scenario)
