"""LightLLM's native HTTP protocol: request bodies, response and stream parsing, its tile rule.

Shapes verified against ModelTC/lightllm (snapshot fc72ffab, 2025-07-11):
- request: ``lightllm/server/api_lightllm.py`` reads ``inputs``, ``parameters`` (required) and
  ``multimodal_params.images[{type, data}]``; parameter names are the keyword arguments of
  ``SamplingParams.init`` in ``lightllm/server/core/objs/sampling_params.py``.
- ``/generate`` answers ``{"generated_text": [text], "count_output_tokens", "finish_reason",
  "prompt_tokens"}`` (+ ``tokens`` with ``return_details``); ``generated_text`` is always a list.
- ``/generate_stream`` sends one ``data:{json}\\n\\n`` event per token (no space after ``data:``,
  no ``[DONE]``); ``token`` carries ``id``, ``text``, ``count_output_tokens`` (cumulative) and
  ``prompt_tokens``; the last event has ``finished: true`` and ``finish_reason``.
- errors: before the stream starts, older versions answer ``{"message": ...}`` with HTTP 417
  (``lightllm/server/api_http.py``), newer ones (v1.2.0, main) ``{"error": {"message", "type",
  ...}}`` with HTTP 400; once a stream has started, main sends ``data: {"error": {...}}`` inside
  the HTTP 200 stream. Both shapes are read; an error event is raised, never read as a token.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

IMAGE_TAG = "<img></img>"  # LightLLM expands each pair to the image's tokens (models/internvl/model.py)
TILE_SIZE = 448
RESIZE_ABOVE_PIXELS = 3_686_400  # v1.2.0+: larger images are shrunk before tiling


def lightllm_resized(width: int, height: int) -> tuple[int, int]:
    """The size LightLLM v1.2.0+ tiles an image at: shrunk to about RESIZE_ABOVE_PIXELS keeping its
    aspect ratio when larger (LANCZOS, re-encoded as JPEG). A prediction: the exact rounding is the
    server's, so a count off by the rounding shows up in the fairness check, not hidden."""
    if width * height <= RESIZE_ABOVE_PIXELS:
        return width, height
    scale = math.sqrt(RESIZE_ABOVE_PIXELS / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def lightllm_tiles(width: int, height: int, max_num: int) -> int:
    """Tiles (thumbnail included) LightLLM cuts from an image; its rule differs from InternVL's.

    ``find_closest_aspect_ratio`` in lightllm/models/internvl/img_process.py starts from the area:
    m = min(ceil(w*h / 448^2), max_num); m <= 1 gives one tile, else among all factor grids of
    m-1, m and m+1 tiles (none above max_num) the one closest in log aspect ratio wins, first on
    ties; a thumbnail is added when there is more than one tile.
    """
    multiple = min(math.ceil(width * height / TILE_SIZE**2), max_num)
    if multiple <= 1:
        return 1
    log_aspect = math.log(width / height)
    best, best_error = 1, math.inf
    for count in (multiple - 1, multiple, multiple + 1):
        if count > max_num:
            continue
        for cols in range(1, count + 1):
            if count % cols == 0:
                error = abs(log_aspect - math.log(cols / (count // cols)))
                if error < best_error:
                    best, best_error = count, error
    return best + 1 if best > 1 else best


def sampling_parameters(max_new_tokens: int, max_tiles: int) -> dict[str, Any]:
    """Greedy, exactly ``max_new_tokens`` tokens, the scenario's tile budget, no penalties, special
    tokens kept (its default flipped from True in 2025 to False on main, so it is always sent).

    ``do_sample`` and the penalties default to the checkpoint's generation_config.json in
    LightLLM (``SamplingParams.load_generation_cfg``), so they are always sent explicitly; the
    tile budget is always sent because LightLLM's own default depends on the image count.
    """
    return {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "ignore_eos": True,
        "image_max_patch_num": max_tiles,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "skip_special_tokens": False,
    }


def request_body(prompt: str, images: list[bytes], parameters: dict[str, Any], return_details: bool) -> dict[str, Any]:
    """The JSON body of /generate and /generate_stream, images inline as base64."""
    return {
        "inputs": prompt,
        "parameters": {**parameters, "return_details": return_details},
        "multimodal_params": {
            "images": [{"type": "base64", "data": base64.b64encode(data).decode("ascii")} for data in images]
        },
    }


@dataclass
class LightLLMResult:
    """One finished request as LightLLM reported it."""

    text: str
    output_tokens: int
    prompt_tokens: int | None
    finish_reason: str | None
    token_ids: list[int] | None = None


@dataclass(frozen=True)
class StreamEvent:
    token_id: int | None
    text: str
    output_tokens_so_far: int | None
    prompt_tokens: int | None
    finished: bool
    finish_reason: str | None


class StreamError(ValueError):
    """LightLLM reported an error inside the stream."""


def parse_stream_data(data: str) -> StreamEvent:
    """One event of the stream (the JSON after ``data:``); an error event raises StreamError."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError(f"event is {type(event).__name__}, not an object")
    if event.get("error"):
        raise StreamError(_message_of(event))
    token = event.get("token") or {}
    return StreamEvent(
        token_id=token.get("id"),
        text=token.get("text") or "",
        output_tokens_so_far=token.get("count_output_tokens"),
        prompt_tokens=token.get("prompt_tokens"),
        finished=bool(event.get("finished")),
        finish_reason=event.get("finish_reason"),
    )


@dataclass
class StreamAccumulator:
    """Folds stream events into a result and says how many new tokens each event brought."""

    pieces: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    output_tokens: int = 0
    last: StreamEvent | None = None

    def add(self, event: StreamEvent) -> int:
        """Record an event; return the number of tokens it added (older servers: one per event)."""
        self.pieces.append(event.text)
        if event.token_id is not None:
            self.token_ids.append(event.token_id)
        previous = self.output_tokens
        self.output_tokens = event.output_tokens_so_far if event.output_tokens_so_far is not None else previous + 1
        self.last = event
        return self.output_tokens - previous

    @property
    def finished(self) -> bool:
        return self.last is not None and self.last.finished

    def result(self) -> LightLLMResult:
        last = self.last
        return LightLLMResult(
            text="".join(self.pieces),
            output_tokens=self.output_tokens,
            prompt_tokens=last.prompt_tokens if last else None,
            finish_reason=last.finish_reason if last else None,
            token_ids=self.token_ids if len(self.token_ids) == self.output_tokens else None,
        )


def parse_generate_response(body: dict[str, Any]) -> LightLLMResult:
    """The /generate answer for one sequence (n == 1)."""
    text = body["generated_text"]
    details = body.get("tokens")
    token_ids = [token["id"] for token in details] if isinstance(details, list) else None
    return LightLLMResult(
        text=text[0] if isinstance(text, list) else text,
        output_tokens=int(body["count_output_tokens"]),
        prompt_tokens=body.get("prompt_tokens"),
        finish_reason=body.get("finish_reason"),
        token_ids=token_ids,
    )


def _message_of(answer: Any) -> str | None:
    """The message of either error shape: ``{"error": {"message": ...}}`` or ``{"message": ...}``."""
    if not isinstance(answer, dict):
        return None
    error = answer.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    if error:
        return str(error)[:300]
    message = answer.get("message")
    return None if message is None else str(message)[:300]


def error_message(status: int, body: bytes) -> str:
    """LightLLM's error text from a non-200 answer, or the raw body when it is not its JSON shape."""
    try:
        message = _message_of(json.loads(body))
    except ValueError:
        message = None
    return f"HTTP {status}: {message or body[:300].decode('utf-8', errors='replace').strip() or 'no body'}"
