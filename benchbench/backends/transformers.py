"""Transformers backend: native ``-hf`` InternVL checkpoints and InternVL's remote-code
``InternVLChatModel``, placed on CPU, one GPU, accelerate's ``auto`` map or InternVL's
``split_model`` map, optionally 8-/4-bit through bitsandbytes.

benchbench tiles and normalises the images itself (the same plan every engine is checked
against) and expands ``<image>`` to exactly the image tokens the model consumes, so the
preprocessing it times is the same work for every checkpoint family.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from benchbench.backends.base import Backend, BackendOptions, Capabilities, Concurrency, Generation, TokenTimer
from benchbench.errors import BenchError, ModelError
from benchbench.workload.imaging import preprocess_image
from benchbench.workload.prompt import IMG_CONTEXT, TEMPLATE_NAME, expanded_image_text, render_prompt
from benchbench.workload.build import WorkloadRequest

Placement = Literal["default", "cpu", "cuda", "auto", "split"]


class TransformersOptions(BackendOptions):
    placement: Placement = "default"
    vit_alpha: float = Field(default=0.5, ge=0.0, lt=1.0)
    load_8bit: bool = False
    load_4bit: bool = False
    attn_implementation: str | None = None
    sleep_per_token_s: float = Field(default=0.0, ge=0.0, le=1.0, description="test-only injected slowdown")
    max_batch_size: int = Field(default=8, ge=1, le=1024, description="static batch under load")

    @model_validator(mode="after")
    def _one_quantisation(self) -> TransformersOptions:
        if self.load_8bit and self.load_4bit:
            raise ValueError("choose one of load_8bit or load_4bit")
        return self


@dataclass
class PreparedInput:
    input_ids: Any
    attention_mask: Any
    pixel_values: Any
    tiles: int
    image_tokens: int
    max_new_tokens: int


class _TimerStreamer:
    """A transformers streamer that reports each step's tokens to every request's timer.

    ``generate`` first hands the streamer the prompt ids; those are not output, so skipped.
    """

    def __init__(self, timers: list[TokenTimer], sleep_per_token_s: float):
        self._timers, self._sleep_s, self._seen_prompt = timers, sleep_per_token_s, False

    def put(self, value) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        if self._sleep_s:
            import time

            time.sleep(self._sleep_s)
        for timer in self._timers:
            timer.tokens(1)

    def end(self) -> None:
        pass


class TransformersBackend(Backend):
    kind = "transformers"
    Options = TransformersOptions

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            streams_tokens=True,
            preprocesses_inside_engine=False,
            forces_exact_tokens=True,
            controls_tiles=True,
            reports_token_ids=True,
        )

    @property
    def concurrency(self) -> Concurrency:
        # transformers' continuous-batching manager (5.x) takes token ids only, no pixel_values,
        # so image requests batch statically here
        return Concurrency("static", self.options.max_batch_size)

    def load(self) -> dict[str, Any]:
        import torch

        config = _read_config(self.context.model_path)
        self.remote_code = "InternVLChatModel" in config.get("architectures", [])
        if self.remote_code and not self.context.trust_remote_code:
            raise ModelError(
                f"model {self.context.model_path}: an InternVLChatModel checkpoint runs remote code; "
                "pass --trust-remote-code if you trust it"
            )
        placement = self._resolve_placement(torch)
        self.dtype = _resolve_dtype(self.context.dtype, placement, torch)
        kwargs: dict[str, Any] = {"dtype": self.dtype, **self._placement_kwargs(placement, config, torch)}
        if self.options.attn_implementation:
            kwargs["attn_implementation"] = self.options.attn_implementation
        self.model, self.tokenizer = _load_checkpoint(self.context.model_path, self.remote_code, kwargs)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
        if self.remote_code:
            self.model.img_context_token_id = self.image_token_id
        self.tokens_per_tile = _tokens_per_tile(self.model, self.remote_code)
        self.input_device = _input_device(self.model)
        self.eos_token_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        return {
            "family": "remote-code InternVLChatModel" if self.remote_code else "native InternVLForConditionalGeneration",
            "placement": placement,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device_map": {k: str(v) for k, v in (getattr(self.model, "hf_device_map", None) or {}).items()},
            "tokens_per_tile": self.tokens_per_tile,
            "quantisation": "8bit" if self.options.load_8bit else "4bit" if self.options.load_4bit else None,
            "prompt_template": TEMPLATE_NAME,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
        }

    def _resolve_placement(self, torch) -> str:
        placement = self.options.placement
        if placement == "default":
            placement = self.context.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if placement in {"cuda", "auto", "split"} and not torch.cuda.is_available():
            raise BenchError(f"backend '{self.context.name}': placement '{placement}' needs a CUDA GPU; use --device cpu")
        if (self.options.load_8bit or self.options.load_4bit) and placement == "cpu":
            raise BenchError(f"backend '{self.context.name}': 8-/4-bit loading needs a CUDA GPU and bitsandbytes")
        return placement

    def _placement_kwargs(self, placement: str, config: dict, torch) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.options.load_8bit or self.options.load_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_8bit=self.options.load_8bit, load_in_4bit=self.options.load_4bit
            )
        if placement == "split":
            from benchbench.models.devicemap import split_model_plan

            layers = _num_llm_layers(config)
            family = "remote" if self.remote_code else "hf"
            kwargs["device_map"] = split_model_plan(layers, torch.cuda.device_count(), self.options.vit_alpha, family).device_map
        elif placement in {"auto", "cuda"} or kwargs:
            kwargs["device_map"] = "auto" if placement == "auto" else {"": 0} if placement == "cuda" else {"": "cpu"}
        else:
            kwargs["device_map"] = {"": "cpu"}
        return kwargs

    def prepare(self, request: WorkloadRequest) -> PreparedInput:
        import numpy as np
        import torch

        tile_stacks = [
            preprocess_image(image.data, image.source, request.tiling) for image in request.images
        ]
        tiles_per_image = tuple(len(stack) for stack in tile_stacks)
        prompt = render_prompt(request, expanded_image_text(tiles_per_image, self.tokens_per_tile))
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        input_ids = encoded["input_ids"].to(self.input_device)
        pixel_values = None
        if tile_stacks:
            pixel_values = torch.from_numpy(np.concatenate(tile_stacks)).to(self.input_device, self.dtype)
        return PreparedInput(
            input_ids=input_ids,
            attention_mask=encoded["attention_mask"].to(self.input_device),
            pixel_values=pixel_values,
            tiles=sum(tiles_per_image),
            image_tokens=int((encoded["input_ids"] == self.image_token_id).sum()),
            max_new_tokens=request.max_new_tokens,
        )

    def generate(self, prepared: PreparedInput, timer: TokenTimer) -> Generation:
        return self.generate_batch([prepared], [timer])[0]

    def generate_batch(self, batch: list[PreparedInput], timers: list[TokenTimer]) -> list[Generation]:
        """Static batching: one ``generate`` over the requests, prompts left-padded; every step's
        tokens reach every request's timer, so each request's TTFT and token times are its own."""
        import torch

        n = batch[0].max_new_tokens
        if any(prepared.max_new_tokens != n for prepared in batch):
            raise BenchError("a static batch needs one max_new_tokens for all its requests")
        input_ids, attention_mask = _left_padded(batch, self.tokenizer.pad_token_id, torch)
        pixels = [prepared.pixel_values for prepared in batch if prepared.pixel_values is not None]
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=torch.cat(pixels) if pixels else None,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=_TimerStreamer(timers, self.options.sleep_per_token_s),
            )
        # The remote-code model generates from embeddings and returns only new tokens.
        new_ids = output if self.remote_code else output[:, input_ids.shape[1] :]
        return [self._generation(prepared, row.tolist()) for prepared, row in zip(batch, new_ids)]

    def _generation(self, prepared: PreparedInput, token_ids: list[int]) -> Generation:
        return Generation(
            text=self.tokenizer.decode(token_ids, skip_special_tokens=False),
            output_tokens=len(token_ids),
            token_ids=token_ids,
            input_tokens=int(prepared.input_ids.shape[1]),
            image_tokens=prepared.image_tokens,
            tiles=prepared.tiles,
            finish_reason="length" if len(token_ids) >= prepared.max_new_tokens else "stop",
            details={"prompt_template": TEMPLATE_NAME},
        )

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def close(self) -> None:
        self.model = None


def _left_padded(batch: list[PreparedInput], pad_token_id: int, torch):
    """Prompts of different lengths (tile counts differ) as one left-padded tensor and mask."""
    if len(batch) == 1:
        return batch[0].input_ids, batch[0].attention_mask
    width = max(prepared.input_ids.shape[1] for prepared in batch)
    ids, masks = [], []
    for prepared in batch:
        pad = width - prepared.input_ids.shape[1]
        ids.append(torch.nn.functional.pad(prepared.input_ids, (pad, 0), value=pad_token_id))
        masks.append(torch.nn.functional.pad(prepared.attention_mask, (pad, 0), value=0))
    return torch.cat(ids), torch.cat(masks)


def _read_config(model_path) -> dict:
    path = model_path / "config.json"
    if not model_path.is_dir():
        raise ModelError(f"model {model_path}: no such directory; give a local checkpoint folder (or omit --model for the embedded tiny model)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model {model_path}: no config.json; give a Hugging Face checkpoint folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"model {model_path}: config.json is not valid JSON; the checkpoint is damaged") from None


def _resolve_dtype(name: str, placement: str, torch):
    if name == "auto":
        return torch.float32 if placement == "cpu" else torch.bfloat16
    return getattr(torch, name)


def _num_llm_layers(config: dict) -> int:
    text = config.get("llm_config") or config.get("text_config") or {}
    if "num_hidden_layers" not in text:
        raise ModelError("the checkpoint's config names no LLM num_hidden_layers; split placement needs it, use 'auto'")
    return int(text["num_hidden_layers"])


def _load_checkpoint(model_path, remote_code: bool, kwargs: dict):
    from transformers import AutoModel, AutoModelForImageTextToText, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()

    try:
        if remote_code:
            model = AutoModel.from_pretrained(model_path, trust_remote_code=True, low_cpu_mem_usage=True, **kwargs)
        else:
            model = AutoModelForImageTextToText.from_pretrained(model_path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=remote_code, use_fast=not remote_code)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {model_path}: cannot load ({first_line}); check it is a complete InternVL checkpoint") from None
    return model.eval(), tokenizer


def _tokens_per_tile(model, remote_code: bool) -> int:
    """Image tokens one tile becomes (256 for InternVL at 448 px, patch 14, pixel shuffle 0.5)."""
    return int(model.num_image_token if remote_code else model.config.image_seq_length)


def _input_device(model):
    """Where inputs go: the embeddings' device (GPU 0 under split_model)."""
    return model.get_input_embeddings().weight.device
