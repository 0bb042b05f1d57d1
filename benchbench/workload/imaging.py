"""InternVL's dynamic tiling and normalisation, reimplemented to match InternVL's own preprocessing.

InternVL (``dynamic_preprocess`` in internvl_chat/internvl/train/dataset.py) picks a grid of
``cols x rows`` 448-px tiles whose aspect ratio is closest to the image's, resizes the image to
that grid (bicubic), cuts it row-major and appends a 448x448 thumbnail when there is more than one
tile. Every backend's tile count is checked against this plan.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from benchbench.errors import ImageError

IMAGENET_MEAN_RGB, IMAGENET_STD_RGB = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_MEAN = np.array(IMAGENET_MEAN_RGB, dtype=np.float32)
IMAGENET_STD = np.array(IMAGENET_STD_RGB, dtype=np.float32)
MAX_IMAGE_PIXELS = 64_000_000  # decompression-bomb cap: far above any real VLM input


@dataclass(frozen=True)
class TilingConfig:
    """The tile budget of one image (InternVL's max_dynamic_patch and friends)."""

    max_num: int = 6
    min_num: int = 1
    use_thumbnail: bool = True
    tile_size: int = 448


def candidate_grids(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """All (cols, rows) with min_num <= cols*rows <= max_num, in InternVL's order.

    InternVL builds a set and sorts it by tile count only; the set's iteration order decides
    among grids with the same count, so it is reproduced the same way here.
    """
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def choose_grid(width: int, height: int, config: TilingConfig) -> tuple[int, int]:
    """The (cols, rows) grid InternVL uses for an image of this size."""
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(config.min_num, config.max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * config.tile_size**2 * cols * rows:
            best = (cols, rows)
    return best


def planned_tiles(width: int, height: int, config: TilingConfig) -> int:
    """How many tiles (thumbnail included) InternVL makes from an image of this size."""
    cols, rows = choose_grid(width, height, config)
    tiles = cols * rows
    return tiles + 1 if config.use_thumbnail and tiles > 1 else tiles


def tile_image(image: Image.Image, config: TilingConfig) -> list[Image.Image]:
    """Cut an RGB image into InternVL tiles: the grid row-major, then the thumbnail."""
    size = config.tile_size
    cols, rows = choose_grid(image.width, image.height, config)
    resized = image.resize((size * cols, size * rows), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * size, r * size, (c + 1) * size, (r + 1) * size))
        for r in range(rows)
        for c in range(cols)
    ]
    if config.use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((size, size), Image.Resampling.BICUBIC))
    return tiles


def normalize_tiles(tiles: list[Image.Image]) -> np.ndarray:
    """Stack tiles into a float32 array (tiles, 3, H, W) scaled to [0, 1] and ImageNet-normalised."""
    pixels = np.stack([np.asarray(tile, dtype=np.float32) for tile in tiles]) / 255.0
    pixels = (pixels - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def decode_image(data: bytes, source: str) -> Image.Image:
    """Decode image bytes to RGB, refusing unreadable, truncated or oversized images."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"image {source}: {opened.width}x{opened.height} exceeds the "
                    f"{MAX_IMAGE_PIXELS:,}-pixel cap; downscale it"
                )
            return opened.convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(f"image {source}: not a recognised image format; give a valid PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"image {source}: cannot decode ({exc}); give a valid PNG or JPEG file") from None


def preprocess_image(data: bytes, source: str, config: TilingConfig) -> np.ndarray:
    """Image bytes to InternVL's normalised tile stack: decode, tile, normalise."""
    return normalize_tiles(tile_image(decode_image(data, source), config))
