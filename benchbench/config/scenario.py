"""Scenario files: the schema every engine's workload is built from, and the built-in lookup."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
import re
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from benchbench.config.fields import STRICT, Int
from benchbench.config.load import LoadSpec, SloSpec
from benchbench.config.yaml_budget import YAMLTooLarge, safe_load
from benchbench.errors import BenchError, ScenarioError
from benchbench.files import read_text

IMAGE_PLACEHOLDER = "<image>"
Settings = TypeVar("Settings", bound=BaseModel)
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "scenarios"
MAX_SCENARIO_BYTES = 1024 * 1024


class _Strict(BaseModel):
    model_config = STRICT


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def _safe_name(value: str | None) -> str | None:
    """Backend names become file names (logs, server groups): letters, digits and . _ + - only."""
    if value is not None and not SAFE_NAME.match(value):
        raise ValueError(f"{value[:80]!r} is not a usable name: use 1 to 64 letters, digits, '.', '_', '+' or '-', "
                         "starting with a letter or digit")
    return value


class SyntheticImages(_Strict):
    """Images drawn from a seed: one distinct image per request, sizes cycled in order."""

    sizes: list[tuple[Int, Int]] = Field(min_length=1)

    @model_validator(mode="after")
    def _sizes_in_range(self) -> SyntheticImages:
        for width, height in self.sizes:
            if not (16 <= width <= 8192 and 16 <= height <= 8192):
                raise ValueError(f"size {width}x{height} must be between 16 and 8192 on each side")
        return self


class ImageSource(_Strict):
    synthetic: SyntheticImages | None = None
    files: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSource:
        if (self.synthetic is None) == (self.files is None):
            raise ValueError("give exactly one of 'synthetic' or 'files'")
        return self


class Turn(_Strict):
    """One user turn; earlier turns carry a fixed assistant reply so every engine sees the same history."""

    user: str = Field(min_length=1)
    assistant: str | None = None


# InternVL's own default system message: the system_message of the ``internvl2_5`` conversation
# template (OpenGVLab/InternVL internvl_chat/internvl/conversation.py; LMDeploy's internvl2_5 and
# SGLang's internvl-2-5 templates carry the same string). Engines that apply the model's template
# themselves use it when no system message is sent.
INTERNVL_DEFAULT = "internvl-default"
INTERNVL_DEFAULT_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


class PromptSpec(_Strict):
    system: str = Field(
        default="You are a helpful assistant.",
        description=f"the system message, or '{INTERNVL_DEFAULT}' for InternVL's own (its model cards')",
    )
    turns: list[Turn] = Field(min_length=1)

    @property
    def system_message(self) -> str:
        """The text every engine receives as the system message."""
        return INTERNVL_DEFAULT_SYSTEM if self.system == INTERNVL_DEFAULT else self.system

    @model_validator(mode="after")
    def _history_has_replies(self) -> PromptSpec:
        if any(turn.assistant is None for turn in self.turns[:-1]):
            raise ValueError("every turn but the last needs a fixed 'assistant' reply")
        if self.turns[-1].assistant is not None:
            raise ValueError("the last turn is generated; remove its 'assistant' reply")
        return self

    @property
    def image_slots(self) -> int:
        return sum(turn.user.count(IMAGE_PLACEHOLDER) for turn in self.turns)


class TilingSpec(_Strict):
    """InternVL's max_dynamic_patch (max_num) and friends; tokens_per_tile is 256 at 448 px."""

    max_num: Int = Field(default=6, ge=1, le=40)
    min_num: Int = Field(default=1, ge=1, le=40)
    use_thumbnail: bool = True
    tile_size: Int = Field(default=448, ge=14, le=1792)
    tokens_per_tile: Int = Field(default=256, ge=1, le=4096)
    sweep_max_num: list[Int] | None = Field(
        default=None, min_length=1, description="run every request once per max_num value (a tiles sweep)"
    )

    @model_validator(mode="after")
    def _budgets_valid(self) -> TilingSpec:
        for budget in self.budgets:
            if not (self.min_num <= budget <= 40):
                raise ValueError(f"max_num {budget} must be between min_num {self.min_num} and 40")
        return self

    @property
    def budgets(self) -> list[int]:
        """The max_num values the workload runs at: the sweep, or just max_num."""
        return self.sweep_max_num or [self.max_num]


MAX_TIMEOUT_S = 30 * 24 * 3600  # a month: longer is "no time-out", which null says


class TimeoutSpec(_Strict):
    """Watchdogs for a backend's worker process; null turns one off."""

    load_s: float | None = Field(default=1800, gt=0, le=MAX_TIMEOUT_S)
    request_s: float | None = Field(default=600, gt=0, le=MAX_TIMEOUT_S)
    backend_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)


class BackendSpec(_Strict):
    kind: str = Field(min_length=1)
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    _names_are_safe = field_validator("kind", "label")(_safe_name)

    @property
    def name(self) -> str:
        return self.label or self.kind


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    seed: Int = Field(default=0, ge=0)
    images: ImageSource
    images_per_request: Int = Field(default=1, ge=0, le=16)
    prompt: PromptSpec
    requests: Int = Field(ge=1, le=100_000)
    warmup: Int = Field(default=1, ge=0, le=1_000)
    repeats: Int = Field(default=1, ge=1, le=1_000)
    max_new_tokens: Int = Field(ge=1, le=32_768)
    tiling: TilingSpec = TilingSpec()
    decoding: Literal["greedy"] = "greedy"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    backends: list[BackendSpec] = Field(default_factory=lambda: [BackendSpec(kind="transformers")], min_length=1)
    timeouts: TimeoutSpec = TimeoutSpec()
    load: LoadSpec | None = None
    slo: SloSpec | None = None
    cache: Literal["cold", "warm"] = Field(
        default="cold", description="cold: fresh image bytes every repeat; warm: each request sent once untimed first"
    )

    @model_validator(mode="after")
    def _placeholders_match_images(self) -> Scenario:
        if self.prompt.image_slots != self.images_per_request:
            raise ValueError(
                f"the prompt has {self.prompt.image_slots} '{IMAGE_PLACEHOLDER}' placeholder(s) but "
                f"images_per_request is {self.images_per_request}; make them equal"
            )
        names = [spec.name for spec in self.backends]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"backend name(s) {duplicates} repeat; give each a distinct 'label'")
        return self

    def content_hash(self) -> str:
        # Absent load/SLO blocks and the default cold cache stay out, so scenarios written before them keep their hash.
        defaults = {key for key in ("load", "slo") if getattr(self, key) is None} | ({"cache"} if self.cache == "cold" else set())
        data = self.model_dump(mode="json", exclude=defaults)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def with_overrides(self, **overrides: Any) -> Scenario:
        """A copy with CLI overrides applied (None means 'keep'), validated like a file."""
        data = self.model_dump(mode="json")
        data.update({key: value for key, value in overrides.items() if value is not None})
        return parse_scenario(data, source="command-line overrides")


def builtin_names() -> list[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml"))


def parse_scenario(data: Any, source: str) -> Scenario:
    return validate_mapping(Scenario, data, f"scenario {source}")


def validate_mapping(model: type[Settings], data: Any, what: str, error: type[BenchError] = ScenarioError) -> Settings:
    """A YAML mapping validated into ``model``; every problem goes into one ``error`` line naming ``what``."""
    if not isinstance(data, dict):
        raise error(f"{what}: the top level must be a mapping of fields")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{what}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]).encode("unicode_escape").decode() or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif error["type"] == "missing":
            message = "required field is missing; add it"
        problems.append(f"field '{field}': {message}")
    return "; ".join(problems)


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.exists():
        if name_or_path in builtin_names():
            path = BUILTIN_DIR / f"{name_or_path}.yaml"
        elif path.suffix in {".yaml", ".yml"} or "/" in name_or_path:
            raise ScenarioError(f"scenario file {name_or_path}: not found; check the path")
        else:
            close = difflib.get_close_matches(name_or_path, builtin_names(), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ScenarioError(
                f"unknown scenario '{name_or_path}': {hint}built-ins are {', '.join(builtin_names())}, or give a YAML path"
            )
    text = read_text(path, "scenario file", "give a YAML scenario file", limit=MAX_SCENARIO_BYTES)
    try:
        data = safe_load(text)
    except YAMLTooLarge as exc:
        raise ScenarioError(f"scenario file {path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ScenarioError(f"scenario file {path}: malformed YAML{where} ({problem}); fix the syntax") from None
    return parse_scenario(_resolve_image_files(data, path.parent), source=f"file {path}")


def _resolve_image_files(data: Any, base_dir: Path) -> Any:
    """Image file paths in a scenario are relative to the scenario file."""
    files = data.get("images", {}).get("files") if isinstance(data, dict) and isinstance(data.get("images"), dict) else None
    if isinstance(files, list):
        resolved = [str(base_dir / item) if isinstance(item, str) else item for item in files]
        data = {**data, "images": {**data["images"], "files": resolved}}
    return data
