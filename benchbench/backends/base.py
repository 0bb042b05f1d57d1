"""What every backend implements, and the plain data it hands back to the runner.

A backend loads a model (``load``), makes any untimed probes it needs (``calibrate``) and answers
one request at a time (``prepare``, then ``generate``). It does not time warmups, aggregate
or print: the runner owns the clock and calls ``timer.tokens(n)`` through the backend whenever
the engine emits tokens, so TTFT and inter-token times are read in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from benchbench.errors import BenchError
from benchbench.results.records import RecordNote
from benchbench.workload.build import WorkloadRequest

if TYPE_CHECKING:
    import asyncio
    from benchbench.backends.http_wire import Origin

DEFAULT_REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Capabilities:
    """What an engine lets benchbench control or observe; the fairness check and report read these."""

    streams_tokens: bool
    """TTFT comes from a real first token (else it is unknown)."""
    preprocesses_inside_engine: bool
    """Image tiling/normalisation happens inside the engine, so it is part of TTFT."""
    forces_exact_tokens: bool
    """The engine can be told to emit exactly N tokens (min_new_tokens / ignore_eos)."""
    controls_tiles: bool
    """The request can set the per-image tile budget (max_dynamic_patch)."""
    reports_token_ids: bool
    """The engine returns output token ids, so outputs can be compared token by token."""


@dataclass(frozen=True)
class Concurrency:
    """How a backend serves requests under load; the report prints it beside each load point."""

    batching: Literal["none", "static", "continuous", "server"]
    """none: one request at a time; static: fixed batches (all finish together); continuous: the
    engine admits requests between steps; server: the server schedules, the client only sends."""
    max_in_flight: int | None
    """requests the backend can work on at once (None: a server, which queues by itself)"""


@dataclass
class Generation:
    """What the engine produced for one request, as the engine itself reports it."""

    text: str
    output_tokens: int
    token_ids: list[int] | None = None
    input_tokens: int | None = None
    image_tokens: int | None = None
    tiles: int | None = None
    finish_reason: str | None = None
    notes: list[RecordNote] = field(default_factory=list)
    """What the report's checks must show about this request (e.g. inter-token times not per token)."""
    chunk_tokens_exact: bool = True
    """Each ``timer.tokens(n)`` gave the true count of that chunk's tokens (token ids, cumulative
    counts, or chunks that add up to the output). False: per-token gaps are unknown, and the
    runner records only the gaps between chunks."""
    details: dict[str, Any] = field(default_factory=dict)


class TokenTimer(Protocol):
    def tokens(self, count: int = 1) -> None:
        """Call as soon as the engine has emitted ``count`` more tokens."""


@dataclass(frozen=True)
class BackendContext:
    """Run-wide settings every backend receives."""

    name: str
    model_path: Path
    dtype: str
    device: str | None
    run_dir: Path
    seed: int
    trust_remote_code: bool = False
    request_timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S
    """The run's per-request deadline (--request-timeout); server backends bound each call by it."""
    load_timeout_s: float | None = None
    """The run's load deadline (--load-timeout); load-time probes are bounded by it as well."""

    def network_deadline_s(self, option_s: float | None, loading: bool = False) -> float:
        """Seconds one network call may take: the backend's own option, else the run's request
        deadline (600 s when the run has none), and never past the load deadline while loading."""
        deadline = option_s or self.request_timeout_s or DEFAULT_REQUEST_TIMEOUT_S
        return min(deadline, self.load_timeout_s or deadline) if loading else deadline


class BackendOptions(BaseModel):
    """Base for each backend's typed options; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend(ABC):
    kind: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, options: BackendOptions, context: BackendContext):
        self.options = options
        self.context = context

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def concurrency(self) -> Concurrency:
        return Concurrency("none", 1)

    @abstractmethod
    def load(self) -> dict[str, Any]:
        """Load the model or start the engine; return facts for the manifest (placement, config)."""

    def calibrate(self, requests: Sequence[WorkloadRequest]) -> None:
        """Untimed probes the workload needs (after ``load``, before the clock starts)."""

    @abstractmethod
    def prepare(self, request: WorkloadRequest) -> Any:
        """Client-side preprocessing (decode, tile, normalise, tokenise); the runner times it."""

    @abstractmethod
    def generate(self, prepared: Any, timer: TokenTimer) -> Generation:
        """Run one prepared request to completion, reporting tokens to ``timer`` as they appear."""

    def engine_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop on which an in-process engine serves many requests at once; under load
        each request then runs there as its own task through ``generate_async``. None: one at a time."""
        return None

    async def generate_async(self, prepared: Any, timer: TokenTimer) -> Generation:
        """``generate`` as a coroutine on ``engine_loop()``, many in flight at once; ``prepared``
        may be shared by several of them, so it is left unchanged."""
        raise NotImplementedError(f"{type(self).__name__} serves one request at a time")

    def synchronize(self) -> None:
        """Wait for queued device work; the runner calls this before reading the clock."""

    def close(self) -> None:
        """Release the engine (stop servers, free memory)."""


@runtime_checkable
class ServedOverHttp(Protocol):
    """A server backend the load client drives directly (execution/load_runner.py) when its
    ``concurrency`` is ``server``: its prepared requests carry their HTTP request rendered to bytes
    (``prepared.request``, before the clock), sent to ``load_origin()`` by the client's own
    connections, each within ``load_deadline_s()``; the backend then reads each received stream.
    backends/server.py's ServerBackend implements it for the server backends."""

    def load_origin(self) -> Origin:
        """Where the load client sends ``prepared.request``."""

    def load_deadline_s(self) -> float:
        """How long one request may take: the backend's request deadline."""

    def generation_from_events(self, prepared: Any, events: Sequence[tuple[int, str]]) -> tuple[Generation, list[tuple[int, int]]]:
        """A received stream (arrival ns, data per event): the Generation and (arrival ns, tokens)
        per event with tokens. Raises ValueError when the events are not a whole, readable answer."""


def parse_options(backend_cls: type[Backend], options: dict[str, Any], name: str) -> BackendOptions:
    """Validate a backend's options from a scenario or the CLI into its typed model."""
    try:
        return backend_cls.Options.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"option '{'.'.join(str(p) for p in e['loc'])}': "
            + ("unknown option; remove it or check its spelling" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        )
        valid = ", ".join(backend_cls.Options.model_fields) or "none"
        raise BenchError(f"backend '{name}' ({backend_cls.kind}): {problems} (valid options: {valid})") from None
