"""A stand-in for the ``lmdeploy`` package's pipeline, NOT an engine: what benchbench's LMDeploy
backend calls, in the shapes lmdeploy 0.16 has them (InternLM/lmdeploy 1263d5cd: ``pipeline.py``,
``serve/core/async_engine.py``, ``serve/core/exceptions.py``, ``serve/managers/session_manager.py``).

- ``pipeline(...)`` returns a ``StandInPipeline``: ``internal_thread.loop`` (an event loop running in
  a daemon thread, as ``_EventLoopThread``), ``session_mgr.get()`` (a new session each call),
  ``backend_config.max_batch_size``, ``close()``;
- ``async_engine.preprocess(session_id=, messages=, gen_config=)`` takes ``preprocess_s`` and
  returns a single-use request; ``async_engine.generate(request, stream_response=True)`` waits for
  one of ``max_batch_size`` request handles (the engine's handle pool), then after ``ttft_s`` and
  every ``token_s`` yields an output carrying ``tokens_per_output`` tokens (text and token ids
  as deltas, ``generate_token_len`` cumulative; token id = session id * 1000 + position), then a
  closing output with ``finish_reason`` "length"; each output has ``to_response(index)``;
- a request with an image ``fail_width`` pixels wide fails in ``preprocess`` with
  ``StandInRequestError`` (code and message, as lmdeploy's ``RequestError``); one ``hang_width`` wide
  never produces a token (cancelling it is counted, as ``safe_run`` cancels the engine's request).

It counts what a test asserts: requests in flight (preprocess to end), the most at once, the most
holding a handle at once, when each request reached ``preprocess`` (``arrived``) and each output
left (``emitted``) by session id, cancellations, and the threads
requests ran on (lmdeploy's PyTorch engine is bound to the pipeline's loop).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StandInResponse:
    """The fields of lmdeploy/messages.py::Response that benchbench reads."""

    text: str
    generate_token_len: int
    input_token_len: int
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    index: int = 0
    cached_tokens: int = 0
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class StandInOutput:
    """async_engine.py::GenOut's shape: ``response`` is the text delta."""

    response: str
    input_token_len: int
    generate_token_len: int
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)

    def to_response(self, index: int = 0) -> StandInResponse:
        return StandInResponse(self.response, self.generate_token_len, self.input_token_len,
                               self.finish_reason, list(self.token_ids), index)  # fmt: skip


class StandInRequestError(RuntimeError):
    """serve/core/exceptions.py::RequestError's shape: an ErrorCode (a str enum) and a message."""

    def __init__(self, code: str, message: str):
        self.code = types.SimpleNamespace(value=code)
        self.message = message
        super().__init__(message)


TOO_LONG = "Input length (9000) must be smaller than the model context length (8192)."


@dataclass
class StandInSettings:
    preprocess_s: float = 0.01
    ttft_s: float = 0.02
    token_s: float = 0.005
    tokens_per_output: int = 1
    input_tokens: int = 1830
    default_max_batch_size: int = 4
    fail_width: int | None = None
    hang_width: int | None = None


class StandInEngine:
    """``async_engine``: preprocess and generate, with the counters a test reads."""

    backend = "turbomind"
    chat_template = types.SimpleNamespace()

    def __init__(self, settings: StandInSettings, backend_config: Any):
        self.settings, self.backend_config = settings, backend_config
        self.in_flight = self.max_in_flight = self.generating = self.max_generating = 0
        self.cancelled, self.requests = 0, 0
        self.threads: set[threading.Thread] = set()
        self.emitted: dict[int, list[int]] = {}
        self.arrived: dict[int, int] = {}
        self._handles: asyncio.Semaphore | None = None

    async def preprocess(self, messages, session_id, gen_config=None, **kwargs) -> dict[str, Any]:
        self.arrived[session_id.session_id] = time.perf_counter_ns()
        self.requests += 1
        self.threads.add(threading.current_thread())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.settings.preprocess_s)
            widths = [item["image_url"]["url"].width for message in messages if isinstance(message["content"], list)
                      for item in message["content"] if item["type"] == "image_url"]  # fmt: skip
            if self.settings.fail_width in widths:
                raise StandInRequestError("context_length_exceeded", TOO_LONG)
        except BaseException:
            self.in_flight -= 1
            raise
        return {"session": session_id, "max_new_tokens": gen_config.max_new_tokens, "hang": self.settings.hang_width in widths}

    async def generate(self, request: dict[str, Any], stream_response: bool = True):
        if self._handles is None:
            self._handles = asyncio.Semaphore(self.backend_config.max_batch_size)
        emitted = self.emitted.setdefault(request["session"].session_id, [])
        try:
            async with self._handles:
                self.generating += 1
                self.max_generating = max(self.max_generating, self.generating)
                try:
                    async for output in self._outputs(request):
                        emitted.append(time.perf_counter_ns())
                        yield output
                finally:
                    self.generating -= 1
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def _outputs(self, request: dict[str, Any]):
        settings, n = self.settings, request["max_new_tokens"]
        if request["hang"]:
            await asyncio.Event().wait()
        await asyncio.sleep(settings.ttft_s)
        made = 0
        while made < n:
            step = min(settings.tokens_per_output, n - made)
            ids = [request["session"].session_id * 1000 + k for k in range(made, made + step)]
            made += step
            yield StandInOutput(" tok" * step, settings.input_tokens, made, None, ids)
            await asyncio.sleep(settings.token_s)
        yield StandInOutput("", settings.input_tokens, made, "length", [])


class StandInSessionManager:
    def __init__(self):
        self._ids = itertools.count(1)

    def get(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(session_id=next(self._ids))


class StandInEventLoopThread:
    """pipeline.py::_EventLoopThread: a loop running forever in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="standin-lmdeploy-loop")
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class StandInPipeline:
    def __init__(self, settings: StandInSettings, backend_config: Any):
        if getattr(backend_config, "max_batch_size", None) is None:
            backend_config.max_batch_size = settings.default_max_batch_size  # lmdeploy resolves its own default
        self.backend_config = backend_config
        self.async_engine = StandInEngine(settings, backend_config)
        self.session_mgr = StandInSessionManager()
        self.internal_thread = StandInEventLoopThread()

    def close(self) -> None:
        self.internal_thread.close()


def standin_lmdeploy_module(settings: StandInSettings) -> types.ModuleType:
    """A module to put in ``sys.modules["lmdeploy"]``; ``module.pipelines`` holds what it built."""
    module = types.ModuleType("lmdeploy")
    module.__version__ = "0.16.0"
    module.pipelines = []
    for name in ("GenerationConfig", "VisionConfig", "TurbomindEngineConfig", "PytorchEngineConfig"):
        setattr(module, name, types.SimpleNamespace)

    def pipeline(model_path: str, backend_config=None, **kwargs) -> StandInPipeline:
        built = StandInPipeline(settings, backend_config)
        module.pipelines.append(built)
        return built

    module.pipeline = pipeline
    return module


def standin_checkpoint(root: Path) -> Path:
    """A checkpoint folder with only the config.json lmdeploy's backend reads (remote-code InternVL,
    dynamic tiling at InternVL's geometry); no weights, since the stand-in loads none."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["InternVLChatModel"], "dynamic_image_size": True, "min_dynamic_patch": 1,
              "use_thumbnail": True, "vision_config": {"image_size": 448}}  # fmt: skip
    (root / "config.json").write_text(json.dumps(config))
    return root
