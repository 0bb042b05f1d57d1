"""SGLang's own InternVL tiling, which differs from InternVL's: predicted so the fairness check can
show the difference (as the LightLLM backend predicts LightLLM's rule).

Read in sgl-project/sglang ``python/sglang/srt/multimodal/processors/internvl.py``: its
``dynamic_preprocess`` starts at one tile (``min_dynamic_patch`` is never passed on), and when two
grids are equally close to the image's aspect ratio it takes the one with more tiles, where
InternVL takes it only if the image covers more than half of that grid; a thumbnail is added when
there is more than one tile. For InternLM2-based checkpoints (InternVL2/2.5-8B and friends) the
budget is fixed at 12 whatever the request says (SGLang 0.5.23).
"""

from __future__ import annotations

import math

from benchbench.backends.checkpoint import CheckpointFamily
from benchbench.workload.imaging import candidate_grids

INTERNLM2_BUDGET = 12


def sglang_budget(requested: int, family: CheckpointFamily | None) -> int:
    """The tile budget SGLang really applies for this checkpoint."""
    return INTERNLM2_BUDGET if family is not None and family.internlm2_based else requested


def sglang_tiles(width: int, height: int, max_num: int) -> int:
    """Tiles (thumbnail included) SGLang cuts from an image at this budget."""
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for cols, rows in candidate_grids(1, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff or (diff == best_diff and cols * rows > best[0] * best[1]):
            best, best_diff = (cols, rows), diff
    tiles = best[0] * best[1]
    return tiles + 1 if tiles > 1 else tiles
