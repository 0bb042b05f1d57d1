"""Realistic-size embedded models: native InternVL with the published dimensions, random weights.

``--model embedded:internvl2_5-1b`` (``-2b``, ``-8b``) builds, once and with no download, a
transformers ``InternVLForConditionalGeneration`` whose vision tower, projector and language model
have the shapes of the named checkpoint, in bfloat16, with seeded random weights and a local
tokenizer padded to the real vocabulary size. Its compute and memory per token are the real
model's, so GPU timings are representative on a machine that cannot reach a model hub; its text
is meaningless, and the manifest and report say the weights are random.

Dimensions, read from public configs (2026-11-26):
- every InternVL2.5 of these sizes uses InternViT-300M-448px-V2_5 (model card table,
  https://huggingface.co/OpenGVLab/InternVL2_5-1B): 24 layers, hidden 1024, 16 heads, MLP 4096,
  qkv bias, no QK norm, LayerNorm eps 1e-6, layer scale 0.1 (its config, as printed in
  github.com/shivangjhalani/multicoco InternVL3-1B_data.md, same ViT and LM as 2.5-1B);
- 1B: Qwen2.5-0.5B-Instruct (same printout: 24 layers, hidden 896, 14 heads, 2 KV heads,
  MLP 4864, vocab 151674, rope theta 1e6, RMS eps 1e-6, untied head);
- 2B: internlm2_5-1_8b-chat (config.json of its fine-tunes on the hub, e.g.
  huggingface.co/Alannikos768/BanterBot_1_8b-chat: 24 layers, hidden 2048, 16 heads, 8 KV heads,
  MLP 8192, RMS eps 1e-5) and 8B: internlm2_5-7b-chat (huggingface.co/Bread-F/xtuner config.json:
  32 layers, hidden 4096, 32 heads, 8 KV heads, MLP 14336); InternVL adds 9 tokens to InternLM2's
  92544 (vocab 92553). transformers' own converter
  (src/transformers/models/internvl/convert_internvl_weights_to_hf.py) turns InternLM2 into a
  Llama text model for the -hf checkpoints, as here.
The projector (LayerNorm(4096) → Linear(4096, hidden) → GELU → Linear) follows from these.
Left out: InternLM2/Qwen2's dynamic RoPE scaling, which changes nothing below 32k positions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from benchbench.errors import ModelError
from benchbench.models.store import ensure_built
from benchbench.models.tiny import (
    BUILD_SEED,
    CHAT_TEMPLATE,
    PROCESSOR_CONFIG,
    build_tokenizer,
    internvl_config,
    save_internvl,
)

PREFIX = "embedded:"
WEIGHT_STD = 0.02  # the published configs' initializer_range
INTERNVIT_300M = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, attention_bias=True,
    use_qk_norm=False, layer_norm_eps=1e-6, norm_type="layer_norm", layer_scale_init_value=0.1, hidden_act="gelu",
    use_absolute_position_embeddings=True, image_size=[448, 448], patch_size=[14, 14],
)  # fmt: skip


@dataclass(frozen=True)
class EmbeddedShape:
    """One published InternVL checkpoint's dimensions; the language model's vocabulary included."""

    checkpoint: str
    vocab_size: int
    text: dict

    def spec_digest(self) -> str:
        import transformers

        spec = [BUILD_SEED, WEIGHT_STD, "meta-fill", asdict(self), INTERNVIT_300M, CHAT_TEMPLATE, PROCESSOR_CONFIG,
                transformers.__version__]
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _internlm2_as_llama(layers: int, hidden: int, heads: int, mlp: int) -> dict:
    return dict(model_type="llama", num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                num_key_value_heads=8, intermediate_size=mlp, rms_norm_eps=1e-5, rope_theta=1e6,
                max_position_embeddings=32768, tie_word_embeddings=False)  # fmt: skip


SHAPES = {
    "internvl2_5-1b": EmbeddedShape(
        "OpenGVLab/InternVL2_5-1B", 151674,
        dict(model_type="qwen2", num_hidden_layers=24, hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
             intermediate_size=4864, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=32768,
             tie_word_embeddings=False),
    ),
    "internvl2_5-2b": EmbeddedShape("OpenGVLab/InternVL2_5-2B", 92553, _internlm2_as_llama(24, 2048, 16, 8192)),
    "internvl2_5-8b": EmbeddedShape("OpenGVLab/InternVL2_5-8B", 92553, _internlm2_as_llama(32, 4096, 32, 14336)),
}  # fmt: skip


def is_embedded(model: str | None) -> bool:
    return model is not None and model.startswith(PREFIX)


def shape_named(model: str) -> tuple[str, EmbeddedShape]:
    """The shape ``embedded:NAME`` names; a one-line error listing the names otherwise."""
    name = model.removeprefix(PREFIX).lower()
    if name not in SHAPES:
        raise ModelError(f"--model {model}: no such embedded model; choose one of "
                         + ", ".join(PREFIX + known for known in SHAPES))
    return name, SHAPES[name]


def ensure_embedded_model(model: str) -> tuple[Path, dict]:
    """The cached folder of ``embedded:NAME`` (built on first use) and what the manifest records of it."""
    name, shape = shape_named(model)

    def build(directory: Path) -> None:
        tokenizer = build_tokenizer(shape.vocab_size)
        config = internvl_config(INTERNVIT_300M, shape.text, tokenizer, tie_word_embeddings=False)
        save_internvl(directory, random_model(config), tokenizer)

    path = ensure_built(f"{name}-random-{shape.spec_digest()}", build)
    return path, {"embedded": name, "shape_of": shape.checkpoint, "random_weights": True}


def random_model(config):
    """The model in bfloat16 with seeded random weights, built without transformers' initialisation.

    Built on the meta device and filled once: constructing it on CPU would initialise every weight
    twice (torch's default, then transformers'), several times slower for a billion parameters.
    """
    import torch
    from transformers import InternVLForConditionalGeneration

    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16).eval()
    generator = torch.Generator().manual_seed(BUILD_SEED)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            _fill(name, parameter, generator)
    return model


def _fill(name: str, parameter, generator) -> None:
    """Norm scales 1, biases 0, InternViT's layer scales 0.1, every other weight N(0, 0.02)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias":
        parameter.zero_()
    elif leaf.startswith("lambda_"):
        parameter.fill_(INTERNVIT_300M["layer_scale_init_value"])
    elif parameter.ndim == 1:
        parameter.fill_(1.0)
    else:
        parameter.normal_(0.0, WEIGHT_STD, generator=generator)
