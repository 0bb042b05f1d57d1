"""Which InternVL family a checkpoint folder holds, read from its config.json without loading it.

Server engines treat the two families differently: LightLLM serves only the remote-code
``internvl_chat`` checkpoints; LMDeploy drops the per-image tile budget for native ``-hf`` ones;
SGLang fixes the budget at 12 for InternLM2-based ones. A server backend reads the run's
``--model`` folder to know which case applies (nothing to read when it holds no config.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CheckpointFamily:
    native_hf: bool
    """transformers' ``InternVLForConditionalGeneration`` (model_type ``internvl``), not remote code."""
    llm_architecture: str | None
    """The language model's class, e.g. ``InternLM2ForCausalLM`` or ``Qwen2ForCausalLM``."""

    @property
    def internlm2_based(self) -> bool:
        return (self.llm_architecture or "").startswith("InternLM2")


def checkpoint_family(model_path: Path) -> CheckpointFamily | None:
    """The family of the checkpoint in ``model_path``; None when it has no readable config.json."""
    try:
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    native = config.get("model_type") == "internvl" or "InternVLForConditionalGeneration" in (config.get("architectures") or [])
    llm = config.get("text_config" if native else "llm_config") or {}
    architectures = llm.get("architectures") if isinstance(llm, dict) else None
    return CheckpointFamily(native_hf=native, llm_architecture=(architectures or [None])[0])
