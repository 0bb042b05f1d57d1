"""split_model arithmetic: InternVL's multi-GPU device map, checked against upstream's numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchbench.models.devicemap import (
    KNOWN_LAYERS,
    PINNED_MODULES,
    internvl_shares,
    layers_for_model,
    split_model_plan,
)
from benchbench.errors import BenchError


def layer_keys(plan) -> dict[int, int]:
    """Decoder-layer index -> GPU, read back from the plan's device map."""
    marker = ".layers."
    return {int(key.rsplit(".", 1)[1]): gpu for key, gpu in plan.device_map.items() if marker in key}


def test_80_layers_on_4_gpus_follows_internvl():
    # InternVL: per = ceil(80 / 3.5) = 23; GPU 0 gets ceil(23 * 0.5) = 12, then the last layer.
    assert internvl_shares(80, 4, 0.5) == [12, 23, 23, 23]
    plan = split_model_plan(80, 4, vit_alpha=0.5)
    layers = layer_keys(plan)

    assert sorted(layers) == list(range(80)), "every layer 0..79 exactly once, none past 79"
    assert "language_model.model.layers.80" not in plan.device_map
    assert layers[79] == 0, "the last layer sits on GPU 0 with the output head"
    assert [k for k in range(80) if layers[k] == 0] == list(range(12)) + [79]
    assert plan.layers_per_gpu == [13, 23, 23, 21]
    assert sum(plan.layers_per_gpu) == 80
    assert plan.layers_on(3) == list(range(58, 79))


def test_remote_family_pins_internvl_module_names_to_gpu_0():
    plan = split_model_plan(48, 2)
    for module in ("vision_model", "mlp1", "language_model.model.tok_embeddings",
                   "language_model.model.embed_tokens", "language_model.output",
                   "language_model.model.norm", "language_model.model.rotary_emb", "language_model.lm_head"):
        assert plan.device_map[module] == 0
    assert plan.device_map["language_model.model.layers.47"] == 0


@settings(max_examples=300, deadline=None)
@given(
    num_layers=st.integers(1, 128),
    num_gpus=st.integers(1, 16),
    vit_alpha=st.floats(0, 1, exclude_max=True),
    family=st.sampled_from(["remote", "hf"]),
)
def test_every_plan_places_each_layer_once_and_pins_to_gpu_0(num_layers, num_gpus, vit_alpha, family):
    plan = split_model_plan(num_layers, num_gpus, vit_alpha, family)
    layers = layer_keys(plan)

    assert sorted(layers) == list(range(num_layers))
    assert len(plan.layers_per_gpu) == num_gpus
    assert plan.layers_per_gpu == [sum(1 for g in layers.values() if g == gpu) for gpu in range(num_gpus)]
    assert all(0 <= gpu < num_gpus for gpu in plan.device_map.values())
    assert layers[num_layers - 1] == 0
    assert all(plan.device_map[module] == 0 for module in PINNED_MODULES[family])
    # Layers are handed out in order: apart from the pinned last one, GPU indices never go back.
    order = [layers[k] for k in range(num_layers - 1)]
    assert order == sorted(order)


def test_trailing_gpus_can_get_no_layers():
    # 2 layers on 4 GPUs: InternVL's shares are [1, 1, 1, 1] and name layers 2 and 3 that do not exist.
    plan = split_model_plan(2, 4)
    assert plan.layers_per_gpu == [2, 0, 0, 0]
    assert sorted(layer_keys(plan)) == [0, 1]


def test_single_gpu_puts_everything_on_gpu_0():
    plan = split_model_plan(24, 1, vit_alpha=0.5)
    assert plan.layers_per_gpu == [24]
    assert set(plan.device_map.values()) == {0}
    assert sorted(layer_keys(plan)) == list(range(24))


@pytest.mark.parametrize(
    "kwargs, names",
    [
        (dict(num_layers=0, num_gpus=2), "num_layers"),
        (dict(num_layers=32, num_gpus=0), "num_gpus"),
        (dict(num_layers=32, num_gpus=2, vit_alpha=1.0), "vit_alpha"),
        (dict(num_layers=32, num_gpus=2, vit_alpha=-0.1), "vit_alpha"),
        (dict(num_layers=32, num_gpus=2, vit_alpha=float("nan")), "vit_alpha"),
        (dict(num_layers=32, num_gpus=2, family="native"), "family"),
    ],
)
def test_invalid_arguments_raise_a_one_line_bench_error(kwargs, names):
    with pytest.raises(BenchError, match=names) as caught:
        split_model_plan(**kwargs)
    assert "\n" not in str(caught.value)


def test_known_checkpoint_layer_counts_match_internvl_model_worker_table():
    assert layers_for_model("InternVL2_5-1B") == 24
    assert layers_for_model("InternVL2_5-4B") == 36
    assert layers_for_model("InternVL2_5-38B") == 64
    assert layers_for_model("OpenGVLab/InternVL2_5-78B") == 80
    assert layers_for_model("/models/InternVL2-26B/") == 48
    assert len(KNOWN_LAYERS) == 19


def test_unknown_checkpoint_name_lists_the_known_ones():
    with pytest.raises(BenchError, match="InternVL2_5-8B") as caught:
        layers_for_model("InternVL9-1B")
    assert "InternVL9-1B" in str(caught.value)


def test_format_shows_a_row_per_gpu_with_ranges_and_pins():
    text = split_model_plan(80, 4).format()
    rows = text.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["0", "1", "2", "3"]
    assert "0-11, 79" in rows[0] and "vision_model" in rows[0]
    assert "12-34" in rows[1] and "vision_model" not in rows[1]
    assert "(none)" in split_model_plan(2, 4).format()


def test_hf_family_names_are_real_modules_of_native_internvl():
    """Every device_map key names a module of a tiny transformers InternVLForConditionalGeneration."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from benchbench.models.tiny import TEXT, VISION

    config = transformers.InternVLConfig(vision_config=VISION, text_config={**TEXT, "num_hidden_layers": 5})
    with torch.device("meta"):  # names only: no weights are allocated
        model = transformers.InternVLForConditionalGeneration(config)
    modules = {name for name, _ in model.named_modules()}

    plan = split_model_plan(5, 3, family="hf")
    assert set(plan.device_map) <= modules
    layer_modules = {name for name in modules if name.count(".") == 3 and ".layers." in name}
    assert layer_modules == {f"model.language_model.layers.{k}" for k in range(5)}

    def placed(name: str) -> bool:  # how transformers resolves a parameter: its longest mapped prefix
        parts = name.split(".")
        return any(".".join(parts[:i]) in plan.device_map for i in range(len(parts), 0, -1))

    assert all(placed(name) for name, _ in model.named_parameters()), "the map must cover every weight"
