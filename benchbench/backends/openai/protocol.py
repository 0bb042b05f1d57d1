"""OpenAI chat-completion requests as each server dialect wants them: the fields that force exactly
N tokens, set the tile budget and ask for token counts. Pure data in, data out; no I/O.

Field names as read in each server's source:
- transformers serve (transformers 5.24, ``transformers/cli/serving/``): unknown top-level keys
  are refused with HTTP 422, so exactness goes through ``generation_config`` (a JSON string that
  replaces the model's GenerationConfig) and tiles through ``chat_template_kwargs.processor_kwargs``
  (``max_patches``/``min_patches`` of the GOT-OCR2 image processor). Usage always rides on the last
  chunk; ``stream_options`` is ignored with a warning, so it is not sent. No ``[DONE]``.
- vLLM (``vllm/entrypoints/openai/chat_completion/protocol.py``): ``min_tokens``, ``ignore_eos``,
  ``return_token_ids`` (each chunk's choice carries its ``token_ids``), ``stream_options.
  continuous_usage_stats`` (cumulative usage on every chunk), ``mm_processor_kwargs`` for
  InternVL's ``max_dynamic_patch``/``min_dynamic_patch``.
- SGLang (``python/sglang/srt/entrypoints/openai/protocol.py``): ``min_tokens``, ``ignore_eos``,
  ``continuous_usage_stats``, top-level ``max_dynamic_patch`` (its InternVL processor never passes
  ``min_dynamic_patch`` on, so it is not sent; ``openai/sglang.py`` has its own tile rule).
- LMDeploy (``lmdeploy/serve/openai/protocol.py``, ``chat_completions/serving.py``,
  ``serve/processors/multimodal.py``): ``min_new_tokens``, ``ignore_eos``, ``return_token_ids``
  (each chunk's choice carries ``output_ids``); extra keys of an ``image_url`` become that image's
  parameters, which InternVL reads as ``max_dynamic_patch`` (not for native ``-hf`` checkpoints,
  whose processor keeps its own budget: ``lmdeploy/vl/model/internvl3_hf.py``).
- ``skip_special_tokens`` is sent as False wherever the server takes it (vLLM, SGLang, LMDeploy),
  as the in-process backends decode: special tokens stay in the text on every engine.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

from benchbench.workload.imaging import TilingConfig
from benchbench.config.scenario import IMAGE_PLACEHOLDER
from benchbench.workload.build import WorkloadImage, WorkloadRequest

Dialect = Literal["generic", "vllm", "sglang", "lmdeploy", "transformers"]


@dataclass(frozen=True)
class DialectTraits:
    """What a server dialect lets a request control or observe."""

    forces_exact_tokens: bool
    controls_tiles: bool
    reports_token_ids: bool
    usage_per_chunk: bool
    stream_options: bool
    sets_special_tokens: bool
    """The request can say whether special tokens are skipped (``skip_special_tokens``)."""


TRAITS: dict[str, DialectTraits] = {
    "generic": DialectTraits(False, False, False, False, True, False),
    "vllm": DialectTraits(True, True, True, True, True, True),
    "sglang": DialectTraits(True, True, False, True, True, True),
    "lmdeploy": DialectTraits(True, True, True, False, True, True),
    "transformers": DialectTraits(True, True, False, False, False, False),
}


def exact_token_fields(dialect: str, max_new_tokens: int) -> dict[str, Any]:
    """The fields that make the server emit exactly ``max_new_tokens`` (none for generic)."""
    n = max_new_tokens
    if dialect in ("vllm", "sglang"):
        fields: dict[str, Any] = {"min_tokens": n, "ignore_eos": True}
    elif dialect == "lmdeploy":
        fields = {"min_new_tokens": n, "ignore_eos": True}
    elif dialect == "transformers":
        fields = {"generation_config": json.dumps({"max_new_tokens": n, "min_new_tokens": n, "do_sample": False})}
    else:
        fields = {}
    if TRAITS[dialect].reports_token_ids:
        fields["return_token_ids"] = True
    if TRAITS[dialect].sets_special_tokens:
        fields["skip_special_tokens"] = False
    return fields


def tile_fields(dialect: str, tiling: TilingConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level request fields, extra keys of each image_url) that set the tile budget."""
    low, high = tiling.min_num, tiling.max_num
    if dialect == "vllm":
        return {"mm_processor_kwargs": {"max_dynamic_patch": high, "min_dynamic_patch": low}}, {}
    if dialect == "sglang":
        return {"max_dynamic_patch": high}, {}
    if dialect == "lmdeploy":
        return {}, {"max_dynamic_patch": high}
    if dialect == "transformers":
        return {"chat_template_kwargs": {"processor_kwargs": {"max_patches": high, "min_patches": low}}}, {}
    return {}, {}


def stream_fields(dialect: str, stream: bool) -> dict[str, Any]:
    traits = TRAITS[dialect]
    if not stream or not traits.stream_options:
        return {"stream": stream}
    options = {"include_usage": True, **({"continuous_usage_stats": True} if traits.usage_per_chunk else {})}
    return {"stream": True, "stream_options": options}


def data_url(image: WorkloadImage) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def chat_messages(
    request: WorkloadRequest, image_extra: dict[str, Any], server_adds_image_newline: bool
) -> list[dict[str, Any]]:
    """The conversation as OpenAI messages, each <image> replaced by an image_url part in place.

    InternVL templates on these servers write a newline after every image themselves, so the
    newline that follows <image> in the scenario text is dropped to keep InternVL's prompt.
    """
    images = iter(request.images)
    messages: list[dict[str, Any]] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    for message in request.messages:
        pieces = message.text.split(IMAGE_PLACEHOLDER)
        if len(pieces) == 1:
            messages.append({"role": message.role, "content": message.text})
            continue
        parts = [{"type": "text", "text": pieces[0]}] if pieces[0] else []
        for piece in pieces[1:]:
            parts.append({"type": "image_url", "image_url": {"url": data_url(next(images)), **image_extra}})
            if server_adds_image_newline and piece.startswith("\n"):
                piece = piece[1:]
            if piece:
                parts.append({"type": "text", "text": piece})
        messages.append({"role": message.role, "content": parts})
    return messages


def text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same messages with every image part removed (the baseline for counting image tokens)."""
    result = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "".join(part["text"] for part in content if part["type"] == "text")
        result.append({"role": message["role"], "content": content})
    return result


def request_body(
    request: WorkloadRequest,
    model: str | None,
    dialect: str,
    stream: bool,
    server_adds_image_newline: bool = True,
    extra_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One greedy chat completion of exactly the request's tokens (where the dialect allows it)."""
    tile_top, image_extra = tile_fields(dialect, request.tiling)
    body: dict[str, Any] = {} if model is None else {"model": model}
    body["messages"] = chat_messages(request, image_extra, server_adds_image_newline)
    body.update(max_tokens=request.max_new_tokens, temperature=0.0, seed=request.seed)
    body.update(exact_token_fields(dialect, request.max_new_tokens))
    body.update(tile_top if request.images else {})
    body.update(stream_fields(dialect, stream))
    body.update(extra_body or {})
    return body


def baseline_body(body: dict[str, Any]) -> dict[str, Any]:
    """A one-token, non-streamed request for the same conversation without its images."""
    keep = {key: body[key] for key in ("model",) if key in body}
    return {**keep, "messages": text_only(body["messages"]), "max_tokens": 1, "temperature": 0.0, "stream": False}
