"""LMDeploy backend: an in-process ``lmdeploy.pipeline`` on the TurboMind or PyTorch engine.

LMDeploy tiles and normalises images inside the engine, so that work lands in TTFT; the client
side (decoding the image file to a PIL image, building the request) is what ``prepare`` times.
What is sent and read back is built in ``lmdeploy_inputs`` (pure, with the upstream files cited).
lmdeploy is imported only in ``load`` (``pip install -e .[lmdeploy]``).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from benchbench.backends.base import Backend, BackendOptions, Capabilities, Concurrency, Generation, TokenTimer
from benchbench.backends.lmdeploy.inputs import (
    ENGINE_CONFIG_CLASSES,
    EngineTiling,
    StreamFold,
    engine_dtype,
    engine_tiling,
    generation_config_kwargs,
    request_failed,
    request_messages,
    tiling_mismatches,
)
from benchbench.errors import BackendError, BenchError, ModelError
from benchbench.workload.imaging import decode_image
from benchbench.workload.build import WorkloadRequest

MIN_VERSION = (0, 16)  # errors come back as responses (no hung stream) and the chat template is the checkpoint's
MODEL_FORMATS = {
    "turbomind": {"hf", "awq", "gptq", "compressed-tensors", "fp8", "mxfp4"},
    "pytorch": {"fp8"},
}


class LMDeployOptions(BackendOptions):
    """Engine settings; defaults are lmdeploy's own (``None`` lets the engine choose)."""

    engine: Literal["turbomind", "pytorch"] = "turbomind"
    tp: int = Field(default=1, ge=1, le=64)
    session_len: int | None = Field(default=None, ge=1, le=10_000_000)
    cache_max_entry_count: float = Field(
        default=0.8, gt=0.0, lt=1.0, description="share of free GPU memory for KV cache"
    )
    max_batch_size: int | None = Field(default=None, ge=1, le=65_536)
    quant_policy: Literal[0, 4, 8, 16, 17] = Field(
        default=0, description="KV cache: 0 none, 4/8 int, 16/17 fp8 (pytorch)"
    )
    model_format: str | None = Field(default=None, description="weight format; default: read from the checkpoint")
    enable_prefix_caching: bool = False
    vision_max_batch_size: int = Field(default=1, ge=1, le=1024, description="VisionConfig.max_batch_size")
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "WARNING"

    @model_validator(mode="after")
    def _engine_supports(self) -> LMDeployOptions:
        if self.quant_policy in (16, 17) and self.engine != "pytorch":
            raise ValueError(f"quant_policy {self.quant_policy} (fp8 KV cache) needs engine 'pytorch'")
        if self.model_format is not None and self.model_format not in MODEL_FORMATS[self.engine]:
            choices = ", ".join(sorted(MODEL_FORMATS[self.engine]))
            raise ValueError(
                f"model_format '{self.model_format}' is not one the {self.engine} engine reads ({choices})"
            )
        return self


def engine_config_kwargs(options: LMDeployOptions, dtype: str) -> dict[str, Any]:
    """Keyword arguments of TurbomindEngineConfig / PytorchEngineConfig, every one set explicitly."""
    return {
        "dtype": dtype,
        "tp": options.tp,
        "session_len": options.session_len,
        "cache_max_entry_count": options.cache_max_entry_count,
        "max_batch_size": options.max_batch_size,
        "quant_policy": options.quant_policy,
        "model_format": options.model_format,
        "enable_prefix_caching": options.enable_prefix_caching,
    }


def import_lmdeploy(backend_name: str):
    """The lmdeploy module, or a one-line error saying how to install a usable one."""
    try:
        import lmdeploy
    except ImportError as exc:
        raise BackendError(
            f"backend '{backend_name}': lmdeploy cannot be imported ({exc}); install it with pip install -e .[lmdeploy]"
        ) from None
    version = tuple(int(part) for part in lmdeploy.__version__.split(".")[:2] if part.isdigit())
    if version < MIN_VERSION:
        raise BackendError(
            f"backend '{backend_name}': lmdeploy {lmdeploy.__version__} is older than "
            f"{'.'.join(map(str, MIN_VERSION))}; upgrade with pip install -e .[lmdeploy]"
        )
    return lmdeploy


@dataclass
class PreparedRequest:
    request_id: str
    messages: list[dict[str, Any]]
    gen_config: Any


class LMDeployBackend(Backend):
    kind = "lmdeploy"
    Options = LMDeployOptions
    options: LMDeployOptions
    pipe: Any = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            streams_tokens=True,
            preprocesses_inside_engine=True,
            forces_exact_tokens=True,
            controls_tiles=True,  # per image for remote-code checkpoints; others are checked in prepare
            reports_token_ids=True,
        )

    def load(self) -> dict[str, Any]:
        name, model_path = self.context.name, self.context.model_path
        lmdeploy = import_lmdeploy(name)
        self.tiling: EngineTiling = engine_tiling(model_path)
        if self.tiling.architecture == "InternVLChatModel" and not self.context.trust_remote_code:
            raise ModelError(
                f"model {model_path}: an InternVLChatModel checkpoint runs remote code; "
                "pass --trust-remote-code if you trust it"
            )
        engine_kwargs = engine_config_kwargs(self.options, engine_dtype(self.context.dtype, name))
        self._generation_config = lmdeploy.GenerationConfig
        self.pipe = lmdeploy.pipeline(
            str(model_path),
            backend_config=getattr(lmdeploy, ENGINE_CONFIG_CLASSES[self.options.engine])(**engine_kwargs),
            vision_config=lmdeploy.VisionConfig(max_batch_size=self.options.vision_max_batch_size),
            trust_remote_code=self.context.trust_remote_code,
            log_level=self.options.log_level,
        )
        engine = self.pipe.async_engine
        if engine.backend != self.options.engine:
            raise BackendError(
                f"backend '{name}': lmdeploy fell back to the {engine.backend} engine (the {self.options.engine} "
                f"engine is not built here or does not support this model); set engine: {engine.backend}"
            )
        self.template = f"lmdeploy {type(engine.chat_template).__name__}"
        resolved = engine.backend_config
        return {
            "engine": "lmdeploy",
            "engine_version": lmdeploy.__version__,
            "engine": engine.backend,
            "engine_config": engine_kwargs,
            "session_len": getattr(resolved, "session_len", None),
            "max_batch_size": getattr(resolved, "max_batch_size", None),
            "vision_max_batch_size": self.options.vision_max_batch_size,
            "prompt_template": self.template,
            "tiling": asdict(self.tiling),
            "preprocessing": "inside the engine (part of TTFT); client side: image decode only",
        }

    def prepare(self, request: WorkloadRequest) -> PreparedRequest:
        mismatches = tiling_mismatches(self.tiling, request.tiling)
        if mismatches:
            raise BenchError(
                f"backend '{self.context.name}': lmdeploy takes {', '.join(mismatches)} from the checkpoint "
                f"({self.tiling.source}); make the scenario's tiling match the checkpoint"
            )
        images = [decode_image(image.data, image.source) for image in request.images]
        return PreparedRequest(
            request_id=request.request_id,
            messages=request_messages(request, images),
            gen_config=self._generation_config(**generation_config_kwargs(request)),
        )

    @property
    def concurrency(self) -> Concurrency:
        # under load every request is a task of its own on the pipeline's loop (generate_async); the
        # engine batches up to max_batch_size of them per step and queues the rest (its handle pool)
        resolved = getattr(self.pipe, "backend_config", None)
        return Concurrency("continuous", getattr(resolved, "max_batch_size", None) or self.options.max_batch_size)

    def engine_loop(self) -> asyncio.AbstractEventLoop:
        """The pipeline's own loop (``Pipeline.internal_thread``), where its engine takes requests."""
        return self.pipe.internal_thread.loop

    def generate(self, prepared: PreparedRequest, timer: TokenTimer) -> Generation:
        fold = StreamFold(prepared.request_id)
        for response in self.pipe.stream_infer(prepared.messages, gen_config=prepared.gen_config):
            _report(fold, response, timer)
        return self._generation(fold)

    async def generate_async(self, prepared: PreparedRequest, timer: TokenTimer) -> Generation:
        """One request in a session of its own, as ``Pipeline._infer`` runs each (lmdeploy 0.16,
        ``pipeline.py``): ``preprocess`` then ``generate``, whose outputs ``to_response`` folds.
        Without the pipeline's max_batch_size semaphore: the load point decides what is in flight."""
        engine, fold = self.pipe.async_engine, StreamFold(prepared.request_id)
        try:
            request = await engine.preprocess(
                session_id=self.pipe.session_mgr.get(), messages=prepared.messages, gen_config=prepared.gen_config
            )
            async for output in engine.generate(request, stream_response=True):
                _report(fold, output.to_response(0), timer)
        except Exception as exc:
            code = getattr(exc, "code", None)  # lmdeploy's RequestError (serve/core/exceptions.py): code, message
            if code is None:
                raise
            raise request_failed(prepared.request_id, getattr(code, "value", code), getattr(exc, "message", str(exc))) from None
        return self._generation(fold)

    def _generation(self, fold: StreamFold) -> Generation:
        return Generation(
            text=fold.text,
            output_tokens=fold.output_tokens,
            token_ids=fold.token_ids,
            input_tokens=fold.input_tokens,
            finish_reason=fold.finish_reason,
            details={
                "prompt_template": self.template,
                "engine": self.options.engine,
                "cached_tokens": fold.cached_tokens,
            },
        )

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None


def _report(fold: StreamFold, response: Any, timer: TokenTimer) -> None:
    new_tokens = fold.add(response)
    if new_tokens > 0:
        timer.tokens(new_tokens)
