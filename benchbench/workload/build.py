"""A scenario turned into one deterministic list of requests, identical for every engine."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from benchbench.errors import ImageError
from benchbench.files import FileError, read_bytes
from benchbench.workload.cache import CacheMode, image_variant
from benchbench.workload.arrivals import schedule_hash
from benchbench.workload.imaging import TilingConfig, decode_image, planned_tiles
from benchbench.config.scenario import IMAGE_PLACEHOLDER, Scenario

Phase = Literal["warmup", "measure"]
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WorkloadImage:
    """One input image: its PNG/JPEG bytes and the content hash engines can be checked against."""

    source: str
    width: int
    height: int
    sha256: str
    data: bytes = field(repr=False)
    mime_type: str = "image/png"


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class WorkloadRequest:
    """One request: the chat so far (images referenced by <image> in order) and its token budget."""

    request_id: str
    phase: Phase
    messages: tuple[ChatMessage, ...]
    images: tuple[WorkloadImage, ...]
    system_prompt: str
    max_new_tokens: int
    tiling: TilingConfig
    tokens_per_tile: int
    seed: int
    turn: int = 1  # which user turn is generated; the messages already define it, so not hashed

    @cached_property  # computed once: each record reads it between two timed requests
    def tiles_per_image(self) -> tuple[int, ...]:
        return tuple(planned_tiles(image.width, image.height, self.tiling) for image in self.images)

    @property
    def tiles_planned(self) -> int:
        return sum(self.tiles_per_image)

    @property
    def image_tokens_planned(self) -> int:
        return self.tiles_planned * self.tokens_per_tile

    def fingerprint(self) -> dict:
        """Everything that defines the request, images by content hash."""
        return {
            "request_id": self.request_id,
            "phase": self.phase,
            "messages": [[m.role, m.text] for m in self.messages],
            "images": [image.sha256 for image in self.images],
            "system_prompt": self.system_prompt,
            "max_new_tokens": self.max_new_tokens,
            "tiling": vars(self.tiling),
            "tokens_per_tile": self.tokens_per_tile,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Workload:
    scenario_name: str
    requests: tuple[WorkloadRequest, ...]
    repeats: int
    cache: CacheMode = "cold"
    load: dict | None = None
    """the scenario's load points, SLO and arrival schedule (None: serial, as before)"""

    @property
    def warmup(self) -> tuple[WorkloadRequest, ...]:
        return tuple(r for r in self.requests if r.phase == "warmup")

    @property
    def measured(self) -> tuple[WorkloadRequest, ...]:
        return tuple(r for r in self.requests if r.phase == "measure")

    def measured_for(self, repeat: int) -> tuple[WorkloadRequest, ...]:
        """The measured requests of one repeat: with a cold cache, repeats after the first carry
        fresh image bytes (same pixels but for a seeded tag), so no engine cache has seen them."""
        if self.cache == "warm" or repeat == 0:
            return self.measured
        return tuple(
            dataclasses.replace(request, images=tuple(_variant(image, repeat, block=1) for image in request.images))
            for request in self.measured
        )

    @property
    def hash(self) -> str:
        fingerprint: list | dict = [r.fingerprint() for r in self.requests]
        if self.load is not None:  # serial workloads keep the hash they always had
            sent = {key: value for key, value in self.load.items() if key != "client_processes"}  # how, not what
            fingerprint = {"requests": fingerprint, "load": sent}
        return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def synthetic_image(width: int, height: int, seed: int) -> Image.Image:
    """A deterministic picture (gradients and flat shapes) that compresses like a photo-ish PNG."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    freq = rng.uniform(1.0, 4.0, size=3)
    channels = [
        127.5 + 127.5 * np.sin(freq[c] * np.pi * (xs / width + ys / height) + phase[c]) for c in range(3)
    ]
    pixels = np.stack(channels, axis=-1)
    for _ in range(4):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 10 + 1, width // 3 + 2), rng.integers(height // 10 + 1, height // 3 + 2)
        pixels[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, size=3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="RGB")


def _png_image(image: Image.Image, source: str) -> WorkloadImage:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    # Hash the pixels, not the PNG bytes: zlib versions may encode identical pixels differently.
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode() + image.tobytes()).hexdigest()
    return WorkloadImage(source, image.width, image.height, digest, buffer.getvalue())


def _file_image(path: str) -> WorkloadImage:
    try:
        data = read_bytes(Path(path), "image", "give a PNG or JPEG file (at most 64 MiB) in the scenario",
                          limit=MAX_IMAGE_FILE_BYTES)
    except FileError as exc:
        raise ImageError(str(exc)) from None
    image = decode_image(data, path)
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    if data[:8] != b"\x89PNG\r\n\x1a\n" and mime != "image/jpeg":
        return _png_image(image, path)  # other formats travel as PNG so every engine can read them
    return WorkloadImage(path, image.width, image.height, hashlib.sha256(data).hexdigest(), data, mime)


def _variant(image: WorkloadImage, tag: int, block: int) -> WorkloadImage:
    data, digest = image_variant(image.data, tag, block)
    return WorkloadImage(f"{image.source}#variant{block}.{tag}", image.width, image.height, digest, data)


class _ImagePool:
    """Hands out images: a fresh synthetic one per slot, or files cycled in order (decoded once);
    with a cold cache a file's warmup use and its reuses are variants, so only its first measured
    use carries its own bytes."""

    def __init__(self, scenario: Scenario):
        self._scenario = scenario
        self._files = [_file_image(path) for path in scenario.images.files or []]

    def image(self, slot: int, phase: Phase) -> WorkloadImage:
        if self._files:
            image = self._files[slot % len(self._files)]
            if self._scenario.cache == "cold" and (phase == "warmup" or slot >= len(self._files)):
                image = _variant(image, slot * 2 + (phase == "warmup") + 1, block=0)
            return image
        sizes = self._scenario.images.synthetic.sizes
        width, height = sizes[slot % len(sizes)]
        seed = self._scenario.seed * 1_000_003 + slot * 2 + (phase == "warmup")
        return _png_image(synthetic_image(width, height, seed), f"synthetic:{width}x{height}:{phase}:{slot}")


def build_workload(scenario: Scenario) -> Workload:
    """Warmup requests first, then measured ones; one per conversation turn and tile budget."""
    pool = _ImagePool(scenario)
    requests: list[WorkloadRequest] = []
    measured = scenario.load.requests if scenario.load and scenario.load.requests else scenario.requests
    for phase, count in (("warmup", scenario.warmup), ("measure", measured)):
        for index in range(count):
            slots = range(index * scenario.images_per_request, (index + 1) * scenario.images_per_request)
            images = tuple(pool.image(slot, phase) for slot in slots)
            requests.extend(_conversation_requests(scenario, phase, index, images))
    if scenario.cache == "warm":
        requests = _warming_first(requests)
    return Workload(scenario.name, tuple(requests), scenario.repeats, scenario.cache, load_plan(scenario))


def _warming_first(requests: list[WorkloadRequest]) -> list[WorkloadRequest]:
    """Each measured request once more as a warmup ("c" for "r"), after the scenario's warmups."""
    warming = [
        dataclasses.replace(r, phase="warmup", request_id="c" + r.request_id[1:]) for r in requests if r.phase == "measure"
    ]
    warmups = [r for r in requests if r.phase == "warmup"]
    return warmups + warming + [r for r in requests if r.phase == "measure"]


def load_plan(scenario: Scenario) -> dict | None:
    """The load points and SLO as data, with the digest of the seeded arrival schedule they use."""
    if scenario.load is None:
        return None
    spec = scenario.load
    count = spec.requests or scenario.requests  # one schedule per pass over the measured requests
    return {"spec": spec.model_dump(mode="json", exclude={"client_processes"}), "client_processes": spec.client_processes, "slo": scenario.slo.model_dump(mode="json") if scenario.slo else None,
            "seed": scenario.seed, "schedule": schedule_hash(spec.arrivals, count, scenario.seed, spec.burstiness)}


def _conversation_requests(
    scenario: Scenario, phase: Phase, index: int, images: tuple[WorkloadImage, ...]
) -> list[WorkloadRequest]:
    prefix = "w" if phase == "warmup" else "r"
    turns = scenario.prompt.turns
    requests = []
    for budget in scenario.tiling.budgets:
        tiling = TilingConfig(budget, scenario.tiling.min_num, scenario.tiling.use_thumbnail, scenario.tiling.tile_size)
        for turn_index in range(len(turns)):
            messages: list[ChatMessage] = []
            for turn in turns[: turn_index + 1]:
                messages.append(ChatMessage("user", turn.user))
                if turn.assistant is not None and turn is not turns[turn_index]:
                    messages.append(ChatMessage("assistant", turn.assistant))
            shown = sum(m.text.count(IMAGE_PLACEHOLDER) for m in messages)
            request_id = f"{prefix}{index:03d}"
            if len(scenario.tiling.budgets) > 1:
                request_id += f"-max{budget}"
            if len(turns) > 1:
                request_id += f"-t{turn_index + 1}"
            requests.append(
                WorkloadRequest(
                    request_id=request_id,
                    phase=phase,
                    messages=tuple(messages),
                    images=images[:shown],
                    system_prompt=scenario.prompt.system_message,
                    max_new_tokens=scenario.max_new_tokens,
                    tiling=tiling,
                    tokens_per_tile=scenario.tiling.tokens_per_tile,
                    seed=scenario.seed,
                    turn=turn_index + 1,
                )
            )
    return requests
