"""LightLLM backend: launches ``python -m lightllm.server.api_server`` (or uses a running server
at ``url``) and sends each request to its native ``/generate_stream`` or ``/generate`` endpoint.

LightLLM is usually installed from source in its own environment, so the server runs under the
configured ``python`` and benchbench never imports it. Images travel as base64 and are tiled
inside the engine, with its own grid rule (see ``lightllm_protocol.lightllm_tiles``).
Flags and environment names: lightllm/server/api_cli.py, docs/EN/source/tutorial/multimodal.rst.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from benchbench.backends.base import BackendOptions, Capabilities, Generation, TokenTimer
from benchbench.backends.http_client import ConnectionLost, new_connection_details
from benchbench.backends.lightllm.client import LightLLMClient, TokenSink
from benchbench.backends.checkpoint import checkpoint_family
from benchbench.backends.lightllm.protocol import (
    IMAGE_TAG,
    RESIZE_ABOVE_PIXELS,
    LightLLMResult,
    lightllm_resized,
    lightllm_tiles,
    request_body,
    sampling_parameters,
)
from benchbench.backends.lightllm.versions import MODULE, InstalledLightLLM, inspect_installed
from benchbench.backends.server import ServerBackend
from benchbench.backends.url import ServerUrl
from benchbench.errors import BackendError, BenchError, ModelError
from benchbench.execution.launch import LaunchedServer, ServerSpec, free_port, launch
from benchbench.workload.prompt import TEMPLATE_NAME, render_prompt
from benchbench.workload.build import WorkloadRequest

DEATH_CHECK_S = 2.0
LAUNCH_ONLY = ("python", "port", "tp", "mem_fraction", "visual_dp", "visual_tp", "visual_infer_batch_size",
               "cache_capacity", "max_req_total_len", "trust_remote_code", "image_length", "load_workers",
               "extra_args", "startup_timeout_s", "prompt_cache")  # fmt: skip
OWNED_FLAGS = {"--model_dir", "--host", "--port", "--tp", "--mem_fraction", "--visual_dp", "--visual_tp",
               "--visual_infer_batch_size", "--cache_capacity", "--max_req_total_len", "--trust_remote_code",
               "--enable_multimodal", "--disable_dynamic_prompt_cache", "--disable_image_resize"}  # fmt: skip


class LightLLMOptions(BackendOptions):
    """Server settings (upstream defaults where LightLLM has one) and client settings."""

    url: ServerUrl | None = Field(default=None, description="use this running server instead of launching one")
    python: str = Field(default=sys.executable, description="interpreter of the environment LightLLM is installed in")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="default: a free port")
    tp: int = Field(default=1, ge=1, le=64)
    mem_fraction: float = Field(default=0.9, gt=0.0, lt=1.0)
    visual_dp: int = Field(default=1, ge=1, le=64)
    visual_tp: int = Field(default=1, ge=1, le=64)
    visual_infer_batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="default: visual_dp (LightLLM requires a multiple of it since 2025-07)"
    )
    cache_capacity: int = Field(default=200, ge=1, le=1_000_000)
    max_req_total_len: int = Field(default=16384, ge=1, le=10_000_000)
    trust_remote_code: bool | None = Field(default=None, description="default: the run's --trust-remote-code")
    image_length: int = Field(default=256, ge=1, le=4096, description="INTERNVL_IMAGE_LENGTH: tokens per tile")
    load_workers: int = Field(default=1, ge=1, le=256, description="LOADWORKER: weight-loading threads")
    extra_args: list[str] = Field(default_factory=list, description="further api_server flags, passed as given")
    stream: bool = True
    prompt_cache: bool = Field(
        default=False, description="keep LightLLM's prompt (radix) cache on; off so repeats are not measured warm"
    )
    startup_timeout_s: float = Field(default=900.0, gt=0.0, le=86_400.0)
    request_timeout_s: float | None = Field(
        default=None, gt=0.0, le=86_400.0, description="deadline of one request; default: the run's --request-timeout"
    )

    @model_validator(mode="after")
    def _consistent(self) -> LightLLMOptions:
        if self.url is not None:
            clashing = sorted(set(LAUNCH_ONLY) & self.model_fields_set)
            if clashing:
                raise ValueError(f"url uses a running server, so {', '.join(clashing)} cannot apply; remove them")
        if self.visual_dp * self.visual_tp != self.tp:
            raise ValueError(
                f"visual_dp {self.visual_dp} x visual_tp {self.visual_tp} must equal tp {self.tp} "
                "(LightLLM's multimodal guide requires it to balance GPU memory)"
            )
        batch = self.visual_infer_batch_size
        if batch is not None and batch % self.visual_dp:
            raise ValueError(
                f"visual_infer_batch_size {batch} must be a multiple of visual_dp {self.visual_dp} "
                f"(LightLLM refuses to start otherwise); set it to {self.visual_dp} or a multiple"
            )
        owned = sorted({arg.split("=")[0] for arg in self.extra_args} & OWNED_FLAGS)
        if owned:
            raise ValueError(f"extra_args {owned} are set by benchbench; use the matching option instead")
        return self


def server_argv(
    options: LightLLMOptions, model_dir: str, port: int, trust_remote_code: bool, installed: InstalledLightLLM
) -> list[str]:
    """The exact api_server command line (an argv list; no shell), with only flags the installed
    version lists."""
    argv = [
        options.python, "-m", MODULE,
        "--model_dir", model_dir,
        "--host", options.host,
        "--port", str(port),
        "--tp", str(options.tp),
        "--mem_fraction", repr(options.mem_fraction),
        "--max_req_total_len", str(options.max_req_total_len),
        "--visual_infer_batch_size", str(options.visual_infer_batch_size or options.visual_dp),
        "--cache_capacity", str(options.cache_capacity),
        "--visual_dp", str(options.visual_dp),
        "--visual_tp", str(options.visual_tp),
    ]  # fmt: skip
    wanted = [
        ("--enable_multimodal", installed.needs_enable_multimodal),
        ("--disable_dynamic_prompt_cache", installed.can_disable_prompt_cache and not options.prompt_cache),
        ("--disable_image_resize", installed.can_disable_image_resize),
        ("--trust_remote_code", trust_remote_code),
    ]
    return argv + [flag for flag, on in wanted if on] + list(options.extra_args)


def server_env(options: LightLLMOptions) -> dict[str, str]:
    """Environment for the server: tokens per tile and loader threads, under both the legacy names
    (lightllm/models/internvl/model.py, .../hf_load_utils.py) and the LIGHTLLM_-prefixed ones newer
    versions register with the legacy names as aliases."""
    image_length, workers = str(options.image_length), str(options.load_workers)
    return {
        "INTERNVL_IMAGE_LENGTH": image_length,
        "LIGHTLLM_INTERNVL_IMAGE_LENGTH": image_length,
        "LOADWORKER": workers,
        "LIGHTLLM_LOADWORKER": workers,
    }


@dataclass(frozen=True)
class PreparedRequest:
    body: dict[str, Any]
    request: bytes
    """the body rendered as an HTTP request, before the clock starts"""
    tiles_per_image: tuple[int, ...] | None
    images_shrunk: tuple[str, ...] = ()


class LightLLMBackend(ServerBackend):
    kind = "lightllm"
    Options = LightLLMOptions
    options: LightLLMOptions

    server: LaunchedServer | None = None
    client: LightLLMClient | None = None
    installed: InstalledLightLLM | None = None
    """What the launched server's environment holds; None for a running server given by url."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            streams_tokens=self.options.stream,
            preprocesses_inside_engine=True,
            forces_exact_tokens=True,
            controls_tiles=True,
            reports_token_ids=True,
        )

    def load(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"prompt_template": TEMPLATE_NAME, "image_tag": IMAGE_TAG, "stream": self.options.stream}
        if self.options.url is not None:
            self._connect(self.options.url)
            # A running server's version, flags and caches are its own: nothing here can read them.
            return {**facts, "url": self.client.url, "launched": False, "engine": "lightllm", "engine_version": None,
                    "prompt_cache": "the running server's setting", "image_resize": "the running server's setting"}
        self._check_model()
        env = {**os.environ, **server_env(self.options)}
        self.installed = inspect_installed(self.options.python, env, self._probe_timeout_s())
        self.server = launch(self._server_spec())
        self._connect(self.server.url)
        spec = self.server.spec
        return {**facts, **self.installed.facts(), "url": self.server.url, "launched": True, "argv": list(spec.argv),
                "env": dict(spec.env), "log": str(spec.log_path), "pid": self.server.pid,
                "prompt_cache": "on" if self.options.prompt_cache or not self.installed.can_disable_prompt_cache else "off",
                "image_resize": self._resize_fact()}  # fmt: skip

    def _probe_timeout_s(self) -> float:
        return min(self.options.startup_timeout_s, self.context.load_timeout_s or math.inf)

    def _check_model(self) -> None:
        """A local remote-code InternVL folder; a native -hf one fails at server start-up, so it is refused here."""
        model_dir = self.context.model_path
        if not (model_dir / "config.json").is_file():
            raise ModelError(f"model {model_dir}: no config.json; LightLLM needs a local InternVL checkpoint folder")
        family = checkpoint_family(model_dir)
        if family is not None and family.native_hf:
            raise ModelError(
                f"model {self.context.model_path}: a native -hf InternVL checkpoint; LightLLM serves only the "
                "remote-code internvl_chat checkpoints (e.g. OpenGVLab/InternVL2_5-8B, not ...-hf); give one of those"
            )

    def _resize_fact(self) -> str:
        if self.installed.can_disable_image_resize:
            return "off (--disable_image_resize)"
        if self.installed.resizes_large_images:
            return f"on: images over {RESIZE_ABOVE_PIXELS:,} px are shrunk (predicted; pixels differ from other engines')"
        return "none (this version does not resize)"

    def _connect(self, url: str) -> None:
        """The pooled client, its connection opened by a health probe before any request is timed."""
        deadline_s = self.context.network_deadline_s(self.options.request_timeout_s)
        self.client = LightLLMClient(url, deadline_s)
        status = self.client.health(self.context.network_deadline_s(self.options.request_timeout_s, loading=True))
        if status != 200:
            raise BackendError(f"lightllm server {self.client.url}/health answered HTTP {status}; wait until it is ready")

    def _server_spec(self) -> ServerSpec:
        model_dir = self.context.model_path
        trust = self.options.trust_remote_code
        trust = self.context.trust_remote_code if trust is None else trust
        port = self.options.port or free_port(self.options.host)
        return ServerSpec(
            name=f"lightllm ({self.context.name})",
            argv=tuple(server_argv(self.options, str(model_dir), port, trust, self.installed)),
            env=server_env(self.options),
            host=self.options.host,
            port=port,
            log_path=self.context.run_dir / "logs" / f"{self.context.name}.server.log",
            startup_timeout_s=min(self.options.startup_timeout_s, self.context.load_timeout_s or math.inf),
        )

    def prepare(self, request: WorkloadRequest) -> PreparedRequest:
        self._check_tiling(request)
        prompt = render_prompt(request, lambda _position, _image: IMAGE_TAG)
        parameters = sampling_parameters(request.max_new_tokens, request.tiling.max_num)
        if self.installed is not None and self.installed.takes_disable_prompt_cache_per_request and not self.options.prompt_cache:
            parameters["disable_prompt_cache"] = True
        body = request_body(prompt, [image.data for image in request.images], parameters, not self.options.stream)
        resized = self.installed is not None and self.installed.resizes_large_images
        sizes = [lightllm_resized(image.width, image.height) if resized else (image.width, image.height) for image in request.images]
        tiles = None
        if not self._custom_preprocessing:
            tiles = tuple(lightllm_tiles(width, height, request.tiling.max_num) for width, height in sizes)
        shrunk = [f"{i.width}x{i.height} -> {w}x{h}" for i, (w, h) in zip(request.images, sizes) if (w, h) != (i.width, i.height)]
        path = "/generate_stream" if self.options.stream else "/generate"
        return PreparedRequest(body, self.client.render(path, body), tiles, tuple(shrunk))

    @property
    def _custom_preprocessing(self) -> bool:
        """A checkpoint's pre_process.py replaces LightLLM's tiling (lightllm/models/vit/__init__.py)."""
        return (self.context.model_path / "pre_process.py").is_file()

    @property
    def _tiling_rule(self) -> str:
        if self._custom_preprocessing:
            return f"checkpoint's {self.context.model_path / 'pre_process.py'} (tile count not predicted)"
        return "lightllm img_process.find_closest_aspect_ratio (area-based grid)"

    def _check_tiling(self, request: WorkloadRequest) -> None:
        """LightLLM takes only a max tile count per request; refuse what it cannot honour."""
        tiling, name = request.tiling, f"backend '{self.context.name}' (lightllm)"
        if (tiling.min_num, tiling.use_thumbnail, tiling.tile_size) != (1, True, 448):
            raise BenchError(
                f"{name}: LightLLM always tiles with min_num 1, a thumbnail and 448-px tiles; "
                "set tiling min_num: 1, use_thumbnail: true, tile_size: 448 or drop this backend"
            )
        if request.tokens_per_tile != self.options.image_length:
            raise BenchError(
                f"{name}: scenario tokens_per_tile {request.tokens_per_tile} != image_length "
                f"{self.options.image_length}; set the option image_length to {request.tokens_per_tile}"
            )

    def generate(self, prepared: PreparedRequest, timer: TokenTimer) -> Generation:
        connections_before = self.client.http.connections_opened
        try:
            # Without a stream there is no first-token time to report: the timer is left untouched.
            stream = self.options.stream
            result = self.client.generate_stream(prepared.request, timer.tokens) if stream else self.client.generate(prepared.request)
        except BackendError as exc:
            raise self._explained(exc) from None
        return self._generation(result, prepared, new_connection_details(self.client.http.connections_opened - connections_before))

    def _stream_sink(self, on_tokens: Callable[[int], None]) -> TokenSink:
        return TokenSink(on_tokens)

    def _generation(self, result: LightLLMResult, prepared: PreparedRequest, connection_details: dict[str, Any]) -> Generation:
        tiles = None if prepared.tiles_per_image is None else sum(prepared.tiles_per_image)
        return Generation(
            text=result.text,
            output_tokens=result.output_tokens,
            token_ids=result.token_ids,
            input_tokens=result.prompt_tokens,
            image_tokens=None if tiles is None else tiles * self.options.image_length,
            tiles=tiles,
            finish_reason=result.finish_reason,
            details={
                "prompt_template": TEMPLATE_NAME,
                "image_max_patch_num": prepared.body["parameters"]["image_max_patch_num"],
                "tiles_per_image": prepared.tiles_per_image and list(prepared.tiles_per_image),
                "tiling_rule": self._tiling_rule,
                **_shrink_note(prepared.images_shrunk),
                **connection_details,
            },
        )

    def _explained(self, exc: BackendError) -> BackendError:
        """If our launched server has died, say so (with its log) rather than only 'connection closed'.

        A killed server's sockets close a moment before it can be reaped, hence the short wait.
        """
        if self.server is None:
            return exc
        code = self.server.exited(within_s=DEATH_CHECK_S if isinstance(exc, ConnectionLost) else 0.0)
        if code is not None:
            return self.server.failure(f"exited with code {code} during a request ({exc})")
        return exc

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def _shrink_note(shrunk: tuple[str, ...]) -> dict[str, str]:
    """The record's note when LightLLM shrinks an image before tiling: its pixels differ from the
    other engines', so its answers may too."""
    if not shrunk:
        return {}
    return {"image_resize_note": f"lightllm shrinks images over {RESIZE_ABOVE_PIXELS:,} px (LANCZOS, JPEG) "
                                 f"before tiling: {', '.join(shrunk)} (predicted); its pixels differ from other engines'"}
