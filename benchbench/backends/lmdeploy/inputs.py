"""What benchbench hands LMDeploy and reads back, as plain data, so it is testable without lmdeploy.

Verified against lmdeploy 0.16 (github InternLM/lmdeploy) and the 0.18.0 wheel:
- engine/vision/generation configs: ``lmdeploy/messages.py``;
- request messages: ``lmdeploy/serve/processors/multimodal.py`` (an ``image_url`` item whose url may
  be a PIL image; the item's other keys reach the vision preprocessor as per-image params) and the
  InternVL guide ``docs/en/multi_modal/internvl.md`` (``IMAGE_TOKEN`` marks where each image goes);
- tiling: ``lmdeploy/vl/model/internvl.py`` (remote-code ``InternVLChatModel``: per-image
  ``max_dynamic_patch``; min_dynamic_patch/use_thumbnail from config.json) and
  ``lmdeploy/vl/model/internvl3_hf.py`` (native ``-hf`` checkpoints: per-image params are dropped,
  the budget is preprocessor_config.json's);
- streamed responses: ``lmdeploy/serve/core/async_engine.py::generate`` (text and token_ids are
  deltas, generate_token_len is cumulative, a final response carries finish_reason).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbench.errors import BackendError, BenchError, ModelError
from benchbench.workload.imaging import TilingConfig
from benchbench.config.scenario import IMAGE_PLACEHOLDER
from benchbench.workload.build import WorkloadRequest

IMAGE_TOKEN = "<IMAGE_TOKEN>"  # lmdeploy/vl/constants.py
DTYPES = {"auto": "auto", "bfloat16": "bfloat16", "float16": "float16"}
ENGINE_CONFIG_CLASSES = {"turbomind": "TurbomindEngineConfig", "pytorch": "PytorchEngineConfig"}


def engine_dtype(dtype: str, backend_name: str) -> str:
    """The run's dtype in lmdeploy's terms; it runs half precision only."""
    if dtype not in DTYPES:
        raise BenchError(
            f"backend '{backend_name}': lmdeploy runs float16/bfloat16 only, not {dtype}; use --dtype auto"
        )
    return DTYPES[dtype]


def generation_config_kwargs(request: WorkloadRequest) -> dict[str, Any]:
    """Greedy decoding of exactly ``max_new_tokens`` tokens, special tokens kept like the other backends."""
    n = request.max_new_tokens
    return {
        "max_new_tokens": n,
        "min_new_tokens": n,
        "ignore_eos": True,
        "do_sample": False,
        "top_k": 1,
        "random_seed": request.seed,
        "skip_special_tokens": False,
    }


def request_messages(request: WorkloadRequest, images: list[Any]) -> list[dict[str, Any]]:
    """OpenAI-style messages: each ``<image>`` becomes lmdeploy's IMAGE_TOKEN (so the prompt text
    around the images is the scenario's, unchanged) and its image item carries the tile budget."""
    if len(images) != len(request.images):
        raise ValueError(f"{len(images)} images for a request with {len(request.images)}")
    remaining = iter(images)
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system_prompt}]
    for message in request.messages:
        count = message.text.count(IMAGE_PLACEHOLDER)
        if count == 0:
            messages.append({"role": message.role, "content": message.text})
            continue
        content: list[dict[str, Any]] = [{"type": "text", "text": message.text.replace(IMAGE_PLACEHOLDER, IMAGE_TOKEN)}]
        for _ in range(count):
            url = {"url": next(remaining), "max_dynamic_patch": int(request.tiling.max_num)}
            content.append({"type": "image_url", "image_url": url})
        messages.append({"role": message.role, "content": content})
    return messages


@dataclass(frozen=True)
class EngineTiling:
    """How lmdeploy's InternVL preprocessor will tile this checkpoint's images."""

    architecture: str
    source: str
    per_request_budget: bool
    min_num: int
    use_thumbnail: bool
    tile_size: int
    max_num: int | None = None
    """Fixed by the checkpoint when the request cannot set it."""


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model {path.parent}: no {path.name}; lmdeploy needs the checkpoint's {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model {path.parent}: cannot read {path.name} ({exc}); the checkpoint is damaged") from None


def engine_tiling(model_path: Path) -> EngineTiling:
    """Read the tiling lmdeploy will apply from the checkpoint, by architecture."""
    config = _read_json(model_path / "config.json", "config")
    architectures = config.get("architectures") or []
    if "InternVLChatModel" in architectures:
        dynamic = config.get("dynamic_image_size", False) or not (model_path / "preprocessor_config.json").is_file()
        if not dynamic:
            raise ModelError(
                f"model {model_path}: config.json has dynamic_image_size false, so lmdeploy would not tile "
                "its images; benchmark a checkpoint with dynamic tiling"
            )
        vision = config.get("vision_config") or {}
        return EngineTiling(
            architecture="InternVLChatModel",
            source="request max_dynamic_patch; min_dynamic_patch/use_thumbnail from config.json",
            per_request_budget=True,
            min_num=int(config.get("min_dynamic_patch", 1)),
            use_thumbnail=bool(config.get("use_thumbnail", False)),
            tile_size=int(vision.get("image_size", 448)),
        )
    if "InternVLForConditionalGeneration" in architectures:
        processor = _read_json(model_path / "preprocessor_config.json", "image processor config")
        size = processor.get("size") or {}
        return EngineTiling(
            architecture="InternVLForConditionalGeneration",
            source="preprocessor_config.json (lmdeploy ignores per-image max_dynamic_patch for -hf checkpoints)",
            per_request_budget=False,
            min_num=int(processor.get("min_patches", 1)),
            use_thumbnail=True,
            tile_size=int(size.get("height", 448)),
            max_num=int(processor.get("max_patches", 12)),
        )
    raise ModelError(
        f"model {model_path}: architectures {architectures} is not InternVL; lmdeploy's backend here runs InternVL"
    )


def tiling_mismatches(engine: EngineTiling, planned: TilingConfig) -> list[str]:
    """Where lmdeploy's tiling of this checkpoint would differ from the workload's plan."""
    pairs = [
        ("min_num", engine.min_num, planned.min_num),
        ("use_thumbnail", engine.use_thumbnail, planned.use_thumbnail),
        ("tile_size", engine.tile_size, planned.tile_size),
    ]
    if not engine.per_request_budget:
        pairs.append(("max_num", engine.max_num, planned.max_num))
    return [f"{name} {used} (checkpoint) != {wanted} (scenario)" for name, used, wanted in pairs if used != wanted]


def request_failed(request_id: str, code: Any, message: str | None) -> BackendError:
    """The engine's own error for one request (an error response, or a RequestError raised)."""
    return BackendError(f"lmdeploy failed request {request_id}: {code}: {message or 'no message'}")


@dataclass
class StreamFold:
    """Folds lmdeploy's streamed responses into one result; ``add`` returns the new token count."""

    request_id: str
    text_parts: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    output_tokens: int = 0
    input_tokens: int | None = None
    finish_reason: str | None = None
    cached_tokens: int = 0

    def add(self, response: Any) -> int:
        if response.finish_reason == "error":
            code = getattr(response, "error_code", None)
            raise request_failed(self.request_id, code, getattr(response, "error_message", None))
        if response.finish_reason == "abort":  # lmdeploy 0.16 counts it a failed request (serve/core/async_engine.py)
            raise request_failed(self.request_id, "abort", "the engine aborted the request (cancelled, or its session dropped)")
        new_tokens = response.generate_token_len - self.output_tokens
        self.output_tokens = response.generate_token_len
        self.input_tokens = response.input_token_len
        self.text_parts.append(response.text)
        self.token_ids.extend(response.token_ids or [])
        self.cached_tokens = getattr(response, "cached_tokens", 0) or 0
        if response.finish_reason is not None:
            self.finish_reason = response.finish_reason
        return new_tokens

    @property
    def text(self) -> str:
        return "".join(self.text_parts)
