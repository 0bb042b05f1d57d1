"""What OpenAI-compatible servers answer: the SSE chunks of a streamed chat completion, a whole
completion, and how many tokens each chunk carried. Pure parsing; no I/O.

Chunk shapes (read in each server's source; samples in tests/unit/test_openai_backend.py):
- transformers serve 5.24 (``transformers/cli/serving/chat_completion.py``): a role chunk, one chunk
  per decoded text piece, then one chunk with an empty delta, ``finish_reason`` and ``usage``;
  the body ends without ``[DONE]``; an error is ``data: {"error": "..."}``.
- vLLM (``vllm/entrypoints/openai/chat_completion/protocol.py``): ``token_ids`` on each choice with
  ``return_token_ids``; cumulative ``usage`` on every chunk with ``continuous_usage_stats``; a final
  usage-only chunk (``choices: []``), then ``[DONE]``.
- LMDeploy (``lmdeploy/serve/openai/chat_completions/serving.py``): ``output_ids`` on the choice,
  ``"usage": null`` until a usage-only chunk, then ``[DONE]``; errors as ``{"error": {...}}``.
- SGLang (``python/sglang/srt/entrypoints/openai/protocol.py``): no ids in chat chunks;
  ``usage.prompt_tokens_details.image_tokens`` when the prompt has images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"

class StreamError(ValueError):
    """The server reported an error inside the stream."""


@dataclass(frozen=True)
class Chunk:
    """One parsed ``chat.completion.chunk``."""

    text: str = ""
    token_ids: list[int] | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    has_choice: bool = False


def parse_sse_data(data: str) -> Chunk | str:
    """One SSE event's data as a Chunk, or ``DONE`` at ``[DONE]``."""
    payload = data.strip()
    if payload == DONE:
        return DONE
    event = json.loads(payload)
    if not isinstance(event, dict):
        raise ValueError(f"event is {type(event).__name__}, not an object")
    if event.get("error"):
        raise StreamError(error_text(event["error"]))
    return chunk_from_event(event)


def chunk_from_event(event: dict[str, Any]) -> Chunk:
    choices = event.get("choices") or []
    usage = event.get("usage") or None
    if not choices:
        return Chunk(usage=usage)
    choice = choices[0]
    delta = choice.get("delta") or {}
    # vLLM names the delta's ids token_ids, LMDeploy output_ids.
    ids = choice.get("token_ids", choice.get("output_ids"))
    return Chunk(
        text=delta.get("content") or "",
        token_ids=list(ids) if ids is not None else None,
        usage=usage,
        finish_reason=choice.get("finish_reason"),
        has_choice=True,
    )


def error_text(error: Any) -> str:
    """The message of an error payload: a string, ``{"message": ...}`` or FastAPI's ``{"detail": ...}``."""
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error)[:300]


@dataclass
class ChatResult:
    """What the server returned for one request, with where each count came from."""

    text: str
    output_tokens: int
    output_tokens_source: str
    prompt_tokens: int | None
    image_tokens_reported: int | None
    finish_reason: str | None
    token_ids: list[int] | None
    streamed_tokens: int | None = None
    stream_count_source: str | None = None


@dataclass
class StreamAccumulator:
    """Adds chunks up and says how many tokens each one carried.

    A chunk's tokens come from its own token ids, else from the growth of cumulative usage
    (servers asked for usage on every chunk), else one per content chunk: transformers serve and
    plain OpenAI servers send one event per decoded text piece, which can hide tokens that
    decoded to nothing. The final usage is the output count; when the per-chunk counts add up to
    less, ``result`` says so rather than pretending the gaps were per token.
    """

    usage_per_chunk: bool = False
    pieces: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    counted: int = 0
    sources: set[str] = field(default_factory=set)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    _ids_seen: bool = False

    def add(self, chunk: Chunk) -> int:
        """Take one chunk; return the tokens it carried (0 for role, usage-only or empty chunks)."""
        tokens, source = self._tokens_in(chunk)
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.pieces.append(chunk.text)
        if chunk.token_ids is not None:
            self._ids_seen = True
            self.token_ids.extend(chunk.token_ids)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        if tokens > 0:
            self.counted += tokens
            self.sources.add(source)
        return tokens

    def _tokens_in(self, chunk: Chunk) -> tuple[int, str]:
        if chunk.token_ids is not None:
            return len(chunk.token_ids), "token ids"
        completion = (chunk.usage or {}).get("completion_tokens")
        if self.usage_per_chunk and chunk.has_choice and isinstance(completion, int):
            return max(0, completion - self.counted), "usage deltas"
        return (1, "one per content chunk") if chunk.text else (0, "")

    def result(self) -> ChatResult:
        usage = self.usage or {}
        reported = usage.get("completion_tokens")
        return ChatResult(
            text="".join(self.pieces),
            output_tokens=reported if isinstance(reported, int) else self.counted,
            output_tokens_source="usage" if isinstance(reported, int) else "counted in the stream (no usage sent)",
            prompt_tokens=usage.get("prompt_tokens"),
            image_tokens_reported=reported_image_tokens(usage),
            finish_reason=self.finish_reason,
            token_ids=self.token_ids if self._ids_seen else None,
            streamed_tokens=self.counted,
            stream_count_source=", ".join(sorted(self.sources)) or None,
        )


def reported_image_tokens(usage: dict[str, Any]) -> int | None:
    """SGLang's ``usage.prompt_tokens_details.image_tokens``, when a server sends it."""
    details = usage.get("prompt_tokens_details") or {}
    value = details.get("image_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) else None


def parse_completion(answer: dict[str, Any]) -> ChatResult:
    """A non-streamed ``chat.completion`` answer."""
    choice = answer["choices"][0]
    usage = answer.get("usage") or {}
    ids = choice.get("token_ids", choice.get("output_ids"))
    return ChatResult(
        text=(choice.get("message") or {}).get("content") or "",
        output_tokens=int(usage["completion_tokens"]),
        output_tokens_source="usage",
        prompt_tokens=usage.get("prompt_tokens"),
        image_tokens_reported=reported_image_tokens(usage),
        finish_reason=choice.get("finish_reason"),
        token_ids=list(ids) if ids is not None else None,
    )


def infer_tiles(prompt_tokens: int, baseline_tokens: int, tokens_per_tile: int) -> tuple[int, int]:
    """(tiles, wrapper tokens) from the prompt's growth when the images are added.

    Each image adds its tiles' tokens plus a few wrapper tokens (``<img>``, ``</img>``, a newline),
    far fewer than one tile's worth for any realistic image count, so the quotient is the tiles.
    """
    added = prompt_tokens - baseline_tokens
    tiles = max(0, added // tokens_per_tile)
    return tiles, added - tiles * tokens_per_tile
