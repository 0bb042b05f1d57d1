"""Backend kinds by name, imported lazily so an engine package loads only when chosen."""

from __future__ import annotations

import difflib
import importlib

from benchbench.backends.base import Backend
from benchbench.errors import BenchError

BACKENDS: dict[str, str] = {
    "transformers": "benchbench.backends.transformers:TransformersBackend",
    "lmdeploy": "benchbench.backends.lmdeploy.backend:LMDeployBackend",
    "lightllm": "benchbench.backends.lightllm.backend:LightLLMBackend",
    "openai": "benchbench.backends.openai.backend:OpenAIBackend",
}


def backend_class(kind: str) -> type[Backend]:
    if kind not in BACKENDS:
        close = difflib.get_close_matches(kind, BACKENDS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise BenchError(f"unknown backend '{kind}': {hint}choose one of {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)
