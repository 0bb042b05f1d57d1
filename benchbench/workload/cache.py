"""Engine caches as a declared part of the workload: ``cache: cold`` or ``cache: warm``.

LightLLM keeps an image-embedding cache keyed on the image's md5 (no off switch) and a prompt
cache; with ``repeats > 1`` the same bytes come back and the second repeat is measured warm on
one engine and cold on another. ``cold`` gives every repeat (and every reuse of an image file)
fresh bytes: the same picture with a few pixels' lowest bit set from a seeded tag, so the tiles,
sizes and answers' inputs stay the same while every content hash differs. ``warm`` sends each
measured request once, untimed, before the measured ones. The report states which was run.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image

CacheMode = Literal["cold", "warm"]
TAG_BITS = 24


@lru_cache(maxsize=32)
def _variant_png(data: bytes, tag: int, block: int) -> tuple[bytes, str]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = np.array(image)
    flat = pixels.reshape(-1, 3)  # a view: writing it writes the image
    blue = flat[block * TAG_BITS : (block + 1) * TAG_BITS, 2]  # off by at most one level
    bits = ((tag >> np.arange(len(blue))) & 1).astype(np.uint8)
    flat[block * TAG_BITS : (block + 1) * TAG_BITS, 2] = (blue & 0xFE) | bits
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode() + pixels.tobytes()).hexdigest()
    return buffer.getvalue(), digest


def image_variant(data: bytes, tag: int, block: int) -> tuple[bytes, str]:
    """(PNG bytes, pixel sha256) of the image with ``tag`` written into the lowest blue bits of
    pixels ``block * 24`` onwards; tags in different blocks (file reuse, repeat) do not collide."""
    return _variant_png(data, tag % (1 << TAG_BITS), block)


def cache_statement(mode: str, resends_images: bool) -> str:
    """One line for the report saying what the engines' caches held when requests were timed."""
    if mode == "warm":
        text = ("warm: every measured request was sent once, untimed, before measuring, so image and prompt "
                "caches could hold its images")
    else:
        text = ("cold: every repeat and every reuse of an image file sends fresh image bytes (seeded variants), so "
                "no engine answers from an earlier repeat's cache; LightLLM's prompt cache is also switched off")
    if resends_images:
        text += ("; later turns resend an earlier turn's image, so they are measured with the image cache warm, "
                 "on purpose (multi-turn)")
    return text
