"""InternVL's ``split_model`` multi-GPU device map, as plain arithmetic (no torch).

InternVL (``internvl_chat/internvl/model/__init__.py``) treats GPU 0 as a fraction of a GPU,
because it also holds the vision tower: ``per = ceil(layers / (gpus - vit_alpha))`` decoder layers
on every GPU but GPU 0, which gets ``ceil(per * (1 - vit_alpha))``. Layers are handed out in
order, then the vision tower, projector, embeddings, final norm, rotary embedding, output head
and the *last* decoder layer are pinned to GPU 0, so the output head sits beside the (tied)
embeddings. The shares add up to at least ``layers``; where InternVL's loop names indices past the
last layer this plan stops instead, so trailing GPUs may hold no layer at all. The float
arithmetic is InternVL's own, so every plan matches what upstream would load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from benchbench.errors import BenchError

Family = Literal["remote", "hf"]

# Decoder layers of known checkpoints: the table in InternVL's streamlit_demo/model_worker.py.
KNOWN_LAYERS: dict[str, int] = {
    "InternVL-Chat-V1-1": 40, "InternVL-Chat-V1-2": 60, "InternVL-Chat-V1-2-Plus": 60,
    "Mini-InternVL-2B-V1-5": 24, "Mini-InternVL-4B-V1-5": 32, "InternVL-Chat-V1-5": 48,
    "InternVL2-8B": 32, "InternVL2-26B": 48, "InternVL2-40B": 60, "InternVL2-Llama3-76B": 80,
    "InternVL2-78B": 80, "InternVL2-Pro": 80,
    "InternVL2_5-1B": 24, "InternVL2_5-2B": 24, "InternVL2_5-4B": 36, "InternVL2_5-8B": 32,
    "InternVL2_5-26B": 48, "InternVL2_5-38B": 64, "InternVL2_5-78B": 80,
}

# "remote": the remote-code InternVLChatModel, whose LLM is InternLM2 (tok_embeddings, output) or
# Qwen2/Llama (embed_tokens, lm_head), so both spellings are pinned, as upstream does.
# "hf": transformers' native InternVLForConditionalGeneration (the "-hf" checkpoints).
_LAYER_NAME: dict[str, str] = {
    "remote": "language_model.model.layers.{}",
    "hf": "model.language_model.layers.{}",
}
PINNED_MODULES: dict[str, tuple[str, ...]] = {
    "remote": ("vision_model", "mlp1", "language_model.model.tok_embeddings",
               "language_model.model.embed_tokens", "language_model.output", "language_model.model.norm",
               "language_model.model.rotary_emb", "language_model.lm_head"),
    "hf": ("model.vision_tower", "model.multi_modal_projector", "model.language_model.embed_tokens",
           "model.language_model.norm", "model.language_model.rotary_emb", "lm_head"),
}


@dataclass(frozen=True)
class DeviceMapPlan:
    """Where each module goes; ``layers_per_gpu`` counts decoder layers after the last is pinned."""

    num_layers: int
    num_gpus: int
    vit_alpha: float
    family: Family
    layers_per_gpu: list[int]
    device_map: dict[str, int]

    def layers_on(self, gpu: int) -> list[int]:
        """The decoder-layer indices placed on ``gpu``, ascending."""
        name = _LAYER_NAME[self.family]
        return [k for k in range(self.num_layers) if self.device_map[name.format(k)] == gpu]

    def format(self) -> str:
        """A table: one row per GPU with its layer ranges, count and pinned modules."""
        shares = internvl_shares(self.num_layers, self.num_gpus, self.vit_alpha)
        lines = [f"split_model: {self.num_layers} layers on {self.num_gpus} GPU(s), vit_alpha {self.vit_alpha}, "
                 f"family {self.family}; InternVL shares {shares}, last layer pinned to GPU 0",
                 f"{'GPU':<4} {'layers':<16} {'count':>5}  pinned modules"]
        pinned = ", ".join(PINNED_MODULES[self.family]) + f", layer {self.num_layers - 1}"
        for gpu, count in enumerate(self.layers_per_gpu):
            ranges = _ranges(self.layers_on(gpu)) or "(none)"
            lines.append(f"{gpu:<4} {ranges:<16} {count:>5}  {pinned if gpu == 0 else ''}".rstrip())
        return "\n".join(lines)


def internvl_shares(num_layers: int, num_gpus: int, vit_alpha: float) -> list[int]:
    """InternVL's layer share per GPU, before capping at ``num_layers``: GPU 0 first."""
    per = math.ceil(num_layers / (num_gpus - vit_alpha))
    return [math.ceil(per * (1 - vit_alpha))] + [per] * (num_gpus - 1)


def split_model_plan(num_layers: int, num_gpus: int, vit_alpha: float = 0.5,
                     family: Family = "remote") -> DeviceMapPlan:
    """The device map InternVL's ``split_model`` builds for ``num_layers`` on ``num_gpus`` GPUs."""
    _validate(num_layers, num_gpus, vit_alpha, family)
    shares = internvl_shares(num_layers, num_gpus, vit_alpha)
    owner = [gpu for gpu, share in enumerate(shares) for _ in range(share)][:num_layers]
    owner[-1] = 0
    name = _LAYER_NAME[family]
    device_map = {name.format(k): gpu for k, gpu in enumerate(owner)}
    device_map.update(dict.fromkeys(PINNED_MODULES[family], 0))
    return DeviceMapPlan(num_layers=num_layers, num_gpus=num_gpus, vit_alpha=vit_alpha, family=family,
                         layers_per_gpu=[owner.count(gpu) for gpu in range(num_gpus)], device_map=device_map)


def layers_for_model(name: str) -> int:
    """Decoder layers of a known InternVL checkpoint, by name, hub id or local path."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    if base not in KNOWN_LAYERS:
        raise BenchError(f"unknown InternVL model name '{name}'; pass the layer count instead, "
                         f"or one of: {', '.join(KNOWN_LAYERS)}")
    return KNOWN_LAYERS[base]


def _validate(num_layers: int, num_gpus: int, vit_alpha: float, family: str) -> None:
    if num_layers < 1:
        raise BenchError(f"split_model: num_layers is {num_layers}; give the LLM's decoder layer count (>= 1)")
    if num_gpus < 1:
        raise BenchError(f"split_model: num_gpus is {num_gpus}; it needs at least one CUDA GPU")
    if not 0 <= vit_alpha < 1:
        raise BenchError(f"split_model: vit_alpha is {vit_alpha}; choose a value in [0, 1), e.g. 0.5")
    if family not in _LAYER_NAME:
        raise BenchError(f"split_model: family is '{family}'; choose 'remote' or 'hf'")


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 79]`` -> ``"0-2, 79"``."""
    spans: list[list[int]] = []
    for k in indices:
        if spans and spans[-1][1] == k - 1:
            spans[-1][1] = k
        else:
            spans.append([k, k])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
