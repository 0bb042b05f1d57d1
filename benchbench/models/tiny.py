"""The embedded default model: a tiny, randomly initialised InternVL with the real architecture.

transformers' native ``InternVLForConditionalGeneration`` (a 1-layer vision tower at InternVL's
real 448 px / patch 14 / pixel-shuffle 0.5 geometry, so one tile is 256 image tokens) on a
2-layer Qwen2, plus a local character-level tokenizer whose every id decodes to visible text.
It is saved with ``save_pretrained`` and loaded back through the same ``from_pretrained`` path a
real checkpoint takes. Seeded, so every build writes the same weights.

Its chat template and ``processor_config.json`` follow the native ``-hf`` InternVL checkpoints
(an image item renders as ``<IMG_CONTEXT>\n``; ``InternVLProcessor`` with a GOT-OCR2 tiling image
processor), so ``transformers serve`` can serve it to the OpenAI backend's tests. The processor
config is plain JSON: writing it needs no torchvision, only loading it does.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

from benchbench.models.store import ensure_built
from benchbench.workload.imaging import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from benchbench.workload.prompt import IMG_CONTEXT, IMG_END, IMG_START

BUILD_SEED = 1234
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", IMG_START, IMG_END, IMG_CONTEXT, "<video>"]
WORDS = "the a an of and to in is on with image shows colour left right top bottom large small".split()
# initializer_range 0.2 (not transformers' 0.02): with default weights a model this small answers
# every image with the same token, which would leave consistency diffs nothing to show.
VISION = dict(initializer_range=0.2, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
              image_size=[448, 448], patch_size=[14, 14])
TEXT = dict(initializer_range=0.2, model_type="qwen2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=128, max_position_embeddings=16384)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IMAGENET_MEAN, IMAGENET_STD = list(IMAGENET_MEAN_RGB), list(IMAGENET_STD_RGB)
PROCESSOR_CONFIG = {
    "processor_class": "InternVLProcessor",
    "image_seq_length": 256,
    "image_processor": {
        "image_processor_type": "GotOcr2ImageProcessor", "crop_to_patches": True, "min_patches": 1,
        "max_patches": 12, "size": {"height": 448, "width": 448}, "resample": 3, "do_resize": True,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD, "do_convert_rgb": True,
    },
    "video_processor": {
        "video_processor_type": "InternVLVideoProcessor", "size": {"height": 448, "width": 448}, "resample": 3,
        "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "do_convert_rgb": True, "do_sample_frames": False,
    },
}  # fmt: skip


def _spec_digest() -> str:
    import transformers

    spec = [BUILD_SEED, SPECIAL_TOKENS, WORDS, VISION, TEXT, CHAT_TEMPLATE, PROCESSOR_CONFIG, transformers.__version__]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def ensure_tiny_model() -> Path:
    """The cached tiny model's directory, building it on first use."""
    return ensure_built(f"tiny-internvl-{_spec_digest()}", build_tiny_model)


def build_tokenizer(vocab_size: int | None = None):
    """A character-level tokenizer (printable ASCII plus a few words) with InternVL's special tokens.

    ``vocab_size`` pads the vocabulary with visible filler words (`` w<n>``) up to a real model's
    size, so a randomly initialised model of real dimensions can emit every id it has.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    visible = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # keep space and newline
    for piece in [*visible, *(" " + word for word in WORDS)]:
        vocab.setdefault(piece, len(vocab))
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise ValueError(f"vocab_size {vocab_size} is below the {len(vocab)} pieces every tokenizer has")
        vocab.update({f" w{index}": index for index in range(len(vocab), vocab_size)})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|endoftext|>"))
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        extra_special_tokens={
            "start_image_token": IMG_START,
            "end_image_token": IMG_END,
            "context_image_token": IMG_CONTEXT,
            "video_token": "<video>",
        },
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(directory: Path) -> None:
    import torch
    from transformers import InternVLForConditionalGeneration

    tokenizer = build_tokenizer()
    config = internvl_config(VISION, TEXT, tokenizer)
    torch.manual_seed(BUILD_SEED)
    save_internvl(directory, InternVLForConditionalGeneration(config).eval(), tokenizer)


def internvl_config(vision: dict, text: dict, tokenizer, **top):
    """A native InternVL config whose text vocabulary is ``tokenizer``'s, so every id the model emits decodes."""
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config=vision,
        text_config={**text, "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None},
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=256,
        downsample_ratio=0.5,
        **top,
    )


def save_internvl(directory: Path, model, tokenizer) -> None:
    """Model, tokenizer and the -hf processor config, as a checkpoint folder ``from_pretrained`` reads."""
    from transformers.utils import logging

    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    logging.disable_progress_bar()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "processor_config.json").write_text(json.dumps(PROCESSOR_CONFIG, indent=2) + "\n", encoding="utf-8")
