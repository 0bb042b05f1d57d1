"""Realistic-size embedded models: published dimensions, seeded random weights, padded tokenizer."""

from __future__ import annotations

import functools

import pytest

from benchbench.errors import ModelError
from benchbench.execution.bench import resolve_model
from benchbench.models.embedded import INTERNVIT_300M, SHAPES, random_model, shape_named
from benchbench.models.tiny import build_tokenizer, internvl_config

# Parameter counts the model cards state (InternVL2.5 family table: 0.9B / 2.2B / 8.1B).
PUBLISHED_PARAMETERS = {"internvl2_5-1b": 0.94e9, "internvl2_5-2b": 2.21e9, "internvl2_5-8b": 8.08e9}


@functools.cache
def meta_model(name: str):
    import torch
    from transformers import InternVLForConditionalGeneration

    shape = SHAPES[name]
    config = internvl_config(INTERNVIT_300M, shape.text, build_tokenizer(shape.vocab_size), tie_word_embeddings=False)
    with torch.device("meta"):
        return InternVLForConditionalGeneration(config)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_has_its_checkpoints_parameter_count_and_vocabulary(name):
    model = meta_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - PUBLISHED_PARAMETERS[name]) / PUBLISHED_PARAMETERS[name] < 0.02, count
    assert model.get_input_embeddings().num_embeddings == SHAPES[name].vocab_size
    assert model.lm_head.weight.shape[0] == SHAPES[name].vocab_size  # untied, as the checkpoints are


def test_the_1b_shape_is_internvit_300m_on_qwen2_0_5b():
    model = meta_model("internvl2_5-1b")
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.model_type, text.num_hidden_layers, text.hidden_size, text.num_attention_heads,
            text.num_key_value_heads, text.intermediate_size) == ("qwen2", 24, 896, 14, 2, 4864)  # fmt: skip
    assert (vision.num_hidden_layers, vision.hidden_size, vision.num_attention_heads) == (24, 1024, 16)
    assert model.model.multi_modal_projector.linear_1.in_features == 4096  # pixel shuffle 0.5: 4 × 1024


def small_config():
    shape = SHAPES["internvl2_5-1b"]
    text = {**shape.text, "num_hidden_layers": 1}
    vision = {**INTERNVIT_300M, "num_hidden_layers": 1}
    return internvl_config(vision, text, build_tokenizer(300), tie_word_embeddings=False)


def test_random_weights_are_seeded_bfloat16_with_unit_norms_zero_biases_and_layer_scale():
    import torch

    first, second = random_model(small_config()), random_model(small_config())
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b), name
    parameters = dict(first.named_parameters())
    assert torch.all(parameters["model.language_model.norm.weight"] == 1)
    assert torch.all(parameters["model.vision_tower.encoder.layer.0.mlp.fc1.bias"] == 0)
    assert torch.all(parameters["model.vision_tower.encoder.layer.0.lambda_1"] == 0.1)
    std = parameters["model.language_model.layers.0.mlp.up_proj.weight"].float().std().item()
    assert 0.019 < std < 0.021


def test_padded_tokenizer_has_the_vocabulary_size_and_fillers_decode_to_visible_words():
    tokenizer = build_tokenizer(1000)
    assert len(tokenizer) == 1000
    assert tokenizer.decode([999]) == " w999"
    assert max(tokenizer("the image shows a cat")["input_ids"]) < len(build_tokenizer())  # text never uses fillers


def test_unknown_embedded_name_is_a_one_line_error_listing_the_names():
    with pytest.raises(ModelError) as caught:
        resolve_model("embedded:internvl2_5-3b")
    message = str(caught.value)
    assert "\n" not in message and "embedded:internvl2_5-1b" in message and "embedded:internvl2_5-8b" in message
    assert shape_named("embedded:InternVL2_5-1B")[0] == "internvl2_5-1b"
