"""InternVL tiling, checked against the rule as InternVL states it, on many image sizes."""

import io

import numpy as np
import pytest
from PIL import Image

from benchbench.errors import ImageError
from benchbench.workload.imaging import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TilingConfig,
    candidate_grids,
    choose_grid,
    decode_image,
    normalize_tiles,
    planned_tiles,
    tile_image,
)


def rule_grid(width, height, min_num, max_num, size=448):
    """InternVL's rule, spelled out: closest aspect ratio; on an exact tie, a later (larger)
    candidate wins only if the image area exceeds half the candidate's full resolution."""
    aspect, area = width / height, width * height
    best, best_diff = None, None
    for cols, rows in candidate_grids(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if best is None or diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * size * size * cols * rows:
            best = (cols, rows)
    return best


def test_candidate_grids_cover_every_product_in_range_sorted_by_tile_count():
    grids = candidate_grids(2, 6)
    assert {c * r for c, r in grids} == {2, 3, 4, 5, 6}
    assert len(grids) == len(set(grids))
    assert [c * r for c, r in grids] == sorted(c * r for c, r in grids)
    assert (1, 1) not in grids and (6, 1) in grids and (1, 6) in grids


@pytest.mark.parametrize("max_num", [1, 6, 12])
def test_chosen_grid_follows_internvl_rule_on_many_sizes(max_num):
    config = TilingConfig(max_num=max_num)
    rng = np.random.default_rng(0)
    sizes = [(int(w), int(h)) for w, h in rng.integers(16, 4000, size=(300, 2))]
    sizes += [(448, 448), (896, 448), (448, 896), (1344, 896), (224, 448), (2000, 100), (100, 2000)]
    for width, height in sizes:
        cols, rows = choose_grid(width, height, config)
        assert (cols, rows) == rule_grid(width, height, 1, max_num)
        assert 1 <= cols * rows <= max_num
        best = min(abs(width / height - c / r) for c, r in candidate_grids(1, max_num))
        assert abs(width / height - cols / rows) == best


def test_known_internvl_examples():
    six = TilingConfig(max_num=6)
    assert choose_grid(800, 600, six) == (3, 2) and planned_tiles(800, 600, six) == 7
    assert planned_tiles(448, 448, six) == 1  # one tile: no thumbnail
    assert choose_grid(1024, 512, six) == (2, 1)


def test_tie_goes_to_larger_grid_only_for_large_images():
    config = TilingConfig(max_num=12)
    # Square image: (1,1), (2,2), (3,3) tie exactly; the larger wins when area > half of its resolution.
    assert choose_grid(448, 448, config) == (1, 1)
    assert choose_grid(800, 800, config) == (2, 2)  # 640000 > 0.5*448^2*4 but not > 0.5*448^2*9
    assert choose_grid(1400, 1400, config) == (3, 3)


def test_thumbnail_only_with_several_tiles():
    assert planned_tiles(800, 600, TilingConfig(max_num=6, use_thumbnail=False)) == 6
    assert planned_tiles(800, 600, TilingConfig(max_num=1)) == 1


def test_tiles_are_row_major_crops_of_the_bicubic_resize_then_thumbnail():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8))
    config = TilingConfig(max_num=6)
    tiles = tile_image(image, config)
    assert len(tiles) == 7 and all(t.size == (448, 448) for t in tiles)
    resized = np.asarray(image.resize((3 * 448, 2 * 448), Image.Resampling.BICUBIC))
    second = np.asarray(tiles[1])  # row 0, column 1
    assert np.array_equal(second, resized[0:448, 448:896])
    fourth = np.asarray(tiles[3])  # row 1, column 0
    assert np.array_equal(fourth, resized[448:896, 0:448])
    assert np.array_equal(np.asarray(tiles[-1]), np.asarray(image.resize((448, 448), Image.Resampling.BICUBIC)))


def test_normalisation_uses_imagenet_mean_and_std_channels_first():
    white = Image.new("RGB", (448, 448), (255, 255, 255))
    pixels = normalize_tiles([white, white])
    assert pixels.shape == (2, 3, 448, 448) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[0, :, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


def test_undecodable_image_is_a_bench_error_naming_the_source():
    with pytest.raises(ImageError, match="image broken.png: not a recognised image format"):
        decode_image(b"not an image", "broken.png")


def test_truncated_png_is_a_bench_error():
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match="cut.png"):
        decode_image(buffer.getvalue()[:200], "cut.png")


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    import benchbench.workload.imaging as imaging

    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 100 * 100)
    buffer = io.BytesIO()
    Image.new("RGB", (101, 100)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match="exceeds"):
        decode_image(buffer.getvalue(), "big.png")
