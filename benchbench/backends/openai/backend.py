"""OpenAI-compatible backend: any server with /v1/chat/completions (``transformers serve``,
``lmdeploy serve api_server``, vLLM, SGLang, ...), given by its URL.

Images travel as data URLs and are tiled inside the server. The ``dialect`` option picks the
server-specific fields that force exactly N greedy tokens, set the tile budget and report token
counts (``openai_protocol``; answers are parsed in ``openai_responses``); ``generic`` sends only
the OpenAI standard, so neither is enforced there and the fairness check counts what came back.
Image tokens come from the server's usage: its own image count where it reports one, else the
prompt's growth over the same conversation without images (one cached text-only request per
distinct conversation, made in ``calibrate`` before the clock starts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import Field

from benchbench.backends.base import BackendOptions, Capabilities, Generation, TokenTimer
from benchbench.backends.http_client import new_connection_details
from benchbench.backends.checkpoint import CheckpointFamily, checkpoint_family
from benchbench.backends.server import ServerBackend
from benchbench.backends.url import ServerUrl
from benchbench.backends.openai.client import ChunkSink, OpenAIClient
from benchbench.backends.openai.sglang import INTERNLM2_BUDGET, sglang_budget, sglang_tiles
from benchbench.backends.openai.protocol import TRAITS, Dialect, baseline_body, request_body
from benchbench.backends.openai.responses import ChatResult, infer_tiles
from benchbench.errors import BackendError, BenchError
from benchbench.results.records import RecordNote
from benchbench.workload.build import WorkloadRequest


VERSION_PATHS = ("/version", "/get_server_info")


class OpenAIOptions(BackendOptions):
    url: ServerUrl = Field(description="server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted)")
    model: str | None = Field(default=None, description="model name to request; default: the first of /v1/models")
    api_key_env: str | None = Field(default=None, description="environment variable holding a bearer token")
    dialect: Dialect = Field(default="generic", description="server family: which extra fields it understands")
    stream: bool = True
    request_timeout_s: float | None = Field(
        default=None, gt=0.0, le=86_400.0, description="deadline of one request; default: the run's --request-timeout"
    )
    server_adds_image_newline: bool = Field(
        default=True, description="the server's template writes '\\n' after each image (InternVL's do)"
    )
    infer_image_tokens: bool = Field(default=True, description="measure image tokens with a text-only request")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="fields merged into every request last")


@dataclass(frozen=True)
class PreparedChat:
    body: dict[str, Any]
    request: bytes
    """the body rendered as an HTTP request, before the clock starts"""
    baseline_tokens: int | None
    tokens_per_tile: int
    engine_rule_tiles: int | None = None
    """Tiles the server's own rule gives (SGLang), where it differs from InternVL's."""


class OpenAIBackend(ServerBackend):
    kind = "openai"
    Options = OpenAIOptions
    options: OpenAIOptions

    client: OpenAIClient | None = None

    @property
    def capabilities(self) -> Capabilities:
        traits = TRAITS[self.options.dialect]
        return Capabilities(
            streams_tokens=self.options.stream,
            preprocesses_inside_engine=True,
            forces_exact_tokens=traits.forces_exact_tokens,
            controls_tiles=traits.controls_tiles and self._budget_fixed_by is None,
            reports_token_ids=traits.reports_token_ids,
        )

    @cached_property
    def _family(self) -> CheckpointFamily | None:
        """The run's --model folder, read as the checkpoint the server serves (None: nothing to read)."""
        return checkpoint_family(self.context.model_path)

    @cached_property
    def _budget_fixed_by(self) -> str | None:
        """Why the server keeps its own tile budget whatever the request says, if it does."""
        family, dialect = self._family, self.options.dialect
        if dialect == "sglang" and family is not None and family.internlm2_based:
            return f"SGLang fixes {INTERNLM2_BUDGET} tiles for InternLM2-based checkpoints"
        if dialect == "lmdeploy" and family is not None and family.native_hf:
            return "LMDeploy drops the per-image budget for native -hf checkpoints (the processor's own applies)"
        return None

    def load(self) -> dict[str, Any]:
        context = self.context
        self.client = OpenAIClient(self.options.url, context.network_deadline_s(self.options.request_timeout_s), self._api_key())
        served = self.client.models(context.network_deadline_s(self.options.request_timeout_s, loading=True))
        self.model = self._pick_model(served)
        self._baselines: dict[str, int | None] = {}
        return {
            "url": self.client.url,
            **self._engine_version(context.network_deadline_s(self.options.request_timeout_s, loading=True)),
            "tile_budget": self._budget_fixed_by or "the request's",
            "special_tokens": "kept (skip_special_tokens false)" if TRAITS[self.options.dialect].sets_special_tokens
            else "the server's default (this dialect takes no skip_special_tokens)",
            "dialect": self.options.dialect,
            "model": self.model,
            "served_models": served,
            "stream": self.options.stream,
            "prompt_template": "the server's chat template",
            "server_adds_image_newline": self.options.server_adds_image_newline,
            "extra_body": self.options.extra_body,
        }

    def _engine_version(self, timeout_s: float) -> dict[str, Any]:
        """The server's own version where it reports one: vLLM and LMDeploy at /version, SGLang
        in /get_server_info; others report none (recorded as such)."""
        for path in VERSION_PATHS:
            answer = self.client.get_json(path, timeout_s)
            if answer and isinstance(answer.get("version"), str):
                return {"engine_version": answer["version"], "engine_version_source": path}
        return {"engine_version": None, "engine_version_source": f"not reported ({', '.join(VERSION_PATHS)} tried)"}

    def _api_key(self) -> str | None:
        name = self.options.api_key_env
        if name is None:
            return None
        if not os.environ.get(name):
            raise BenchError(f"backend '{self.context.name}' (openai): environment variable {name} is unset or empty; export the API key there")
        return os.environ[name]

    def _pick_model(self, served: list[str] | None) -> str | None:
        wanted = self.options.model
        if wanted is not None:
            # No list, or an empty one, is no evidence against the named model: a pinned `transformers
            # serve` 5.17 lists only its Hugging Face cache, never the local model it serves.
            if not served or wanted in served:
                return wanted
            raise BenchError(
                f"backend '{self.context.name}' (openai): model {wanted!r} is not served at {self.client.url} "
                f"(it serves {', '.join(served)}); set the option model to one of those"
            )
        if served == []:
            raise BackendError(f"openai server {self.client.url} lists no models at /v1/models; set the backend option model")
        return served[0] if served else None

    def calibrate(self, requests: Sequence[WorkloadRequest]) -> None:
        """Prompt tokens of each distinct conversation without images, asked before the clock starts."""
        if not self.options.infer_image_tokens:
            return
        for request in requests:
            if request.images:
                probe = baseline_body(self._body(request))
                key = _conversation_key(probe)
                if key not in self._baselines:
                    probe_request = self.client.chat_request({**probe, **self.options.extra_body})
                    self._baselines[key] = self.client.complete(probe_request).prompt_tokens

    def prepare(self, request: WorkloadRequest) -> PreparedChat:
        if self.options.dialect == "sglang" and request.images and request.tiling.min_num != 1:
            raise BenchError(
                f"backend '{self.context.name}' (openai, sglang): SGLang always tiles from 1 tile (it ignores "
                f"min_dynamic_patch); set tiling min_num: 1 or drop this backend"
            )
        body = self._body(request)
        baseline = None
        if request.images and self.options.infer_image_tokens:
            baseline = self._baselines.get(_conversation_key(baseline_body(body)))
        predicted = None
        if self.options.dialect == "sglang" and request.images:
            budget = sglang_budget(request.tiling.max_num, self._family)
            predicted = sum(sglang_tiles(image.width, image.height, budget) for image in request.images)
        return PreparedChat(body, self.client.chat_request(body), baseline, request.tokens_per_tile, predicted)

    def _body(self, request: WorkloadRequest) -> dict[str, Any]:
        options = self.options
        return request_body(request, self.model, options.dialect, options.stream, options.server_adds_image_newline, options.extra_body)

    def generate(self, prepared: PreparedChat, timer: TokenTimer) -> Generation:
        connections_before = self.client.http.connections_opened
        if self.options.stream:
            usage_per_chunk = TRAITS[self.options.dialect].usage_per_chunk
            result = self.client.stream(prepared.request, timer.tokens, usage_per_chunk)
        else:
            result = self.client.complete(prepared.request)
        return self._generation(result, prepared, new_connection_details(self.client.http.connections_opened - connections_before))

    def _stream_sink(self, on_tokens: Callable[[int], None]) -> ChunkSink:
        return ChunkSink(on_tokens, TRAITS[self.options.dialect].usage_per_chunk)

    def _generation(self, result: ChatResult, prepared: PreparedChat, connection_details: dict[str, Any]) -> Generation:
        tiles, image_tokens, image_details = _image_counts(result, prepared)
        return Generation(
            text=result.text,
            output_tokens=result.output_tokens,
            token_ids=result.token_ids,
            input_tokens=result.prompt_tokens,
            image_tokens=image_tokens,
            tiles=tiles,
            finish_reason=result.finish_reason,
            details={
                "prompt_template": "the server's chat template",
                "dialect": self.options.dialect,
                "output_tokens_source": result.output_tokens_source,
                **_stream_details(result),
                **image_details,
                **connection_details,
            },
            notes=_stream_notes(result),
            chunk_tokens_exact=_chunks_add_up(result),
        )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _conversation_key(probe: dict[str, Any]) -> str:
    return json.dumps(probe["messages"], sort_keys=True)


def _image_counts(result: ChatResult, prepared: PreparedChat) -> tuple[int | None, int | None, dict[str, Any]]:
    """(tiles, image tokens, details): the server's own image count, else the prompt's growth,
    else the count its own tile rule predicts."""
    per_tile = prepared.tokens_per_tile
    details: dict[str, Any] = {}
    if prepared.engine_rule_tiles is not None:
        details["engine_rule_tiles"] = prepared.engine_rule_tiles
        if result.image_tokens_reported is None and (result.prompt_tokens is None or prepared.baseline_tokens is None):
            details["image_tokens_source"] = "predicted by SGLang's tile rule (openai/sglang.py)"
            return prepared.engine_rule_tiles, prepared.engine_rule_tiles * per_tile, details
    if result.image_tokens_reported is not None:
        details["image_tokens_source"] = "usage.prompt_tokens_details.image_tokens"
        return result.image_tokens_reported // per_tile, result.image_tokens_reported, details
    if result.prompt_tokens is None or prepared.baseline_tokens is None:
        return None, None, details
    tiles, wrapper = infer_tiles(result.prompt_tokens, prepared.baseline_tokens, per_tile)
    details.update(
        image_tokens_source="prompt_tokens minus a text-only request's",
        text_only_prompt_tokens=prepared.baseline_tokens,
        image_wrapper_tokens=wrapper,
    )
    return tiles, tiles * per_tile, details


def _stream_details(result: ChatResult) -> dict[str, Any]:
    """How the stream's per-chunk token counts were known."""
    if result.streamed_tokens is None:
        return {}
    return {"stream_count_source": result.stream_count_source, "streamed_tokens": result.streamed_tokens}


def _chunks_add_up(result: ChatResult) -> bool:
    """Every output token was counted in some chunk (or nothing was streamed): the per-chunk counts
    are then the stream's own, so the gaps can be spread per token."""
    return result.streamed_tokens is None or result.streamed_tokens == result.output_tokens


def _stream_notes(result: ChatResult) -> list[RecordNote]:
    """A stream whose chunks do not add up to the output: its per-token gaps are unknown."""
    if _chunks_add_up(result):
        return []
    return [RecordNote(kind="inter_token_chunks", message=(
        f"chunks accounted for {result.streamed_tokens} of {result.output_tokens} tokens, so how many tokens "
        "each chunk carried is unknown; inter-token times and decode speed are left unknown and the gaps "
        "between chunks are reported as inter-chunk times"))]
