"""One benchmark run end to end: run folder, manifest, every backend in turn, summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from benchbench.backends.base import parse_options
from benchbench.environment import fingerprint, weights_hash
from benchbench.errors import BenchError, ModelError
from benchbench.records import MANIFEST_FILE, RESULTS_FILE, Manifest, RecordSink, RequestRecord, write_manifest
from benchbench.registry import backend_class
from benchbench.runner import RunSettings, run_backend
from benchbench.scenario import Scenario
from benchbench.workload import Workload

REPORTS_ROOT = Path("reports")


def default_run_dir(scenario: Scenario) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS_ROOT / f"{scenario.name}-{stamp}"


def create_run_dir(path: Path) -> Path:
    """A fresh, writable run folder; refuses one that already holds results."""
    if (path / RESULTS_FILE).exists() or (path / MANIFEST_FILE).exists():
        raise BenchError(f"output folder {path}: already holds a run; choose another --output-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"output folder {path}: not writable ({exc.strerror}); choose another --output-dir") from None
    return path


def backend_specs(kinds: tuple[str, ...], url: str | None) -> list[dict]:
    """Backends named on the command line; --url goes to the server backends among them."""
    specs = []
    for kind in kinds:
        options = {"url": url} if url and kind in {"openai", "lightllm"} else {}
        specs.append({"kind": kind, "options": options})
    return specs


def check_backends(scenario: Scenario) -> None:
    """Fail before anything runs if a backend kind or option is wrong."""
    for spec in scenario.backends:
        cls = backend_class(spec.kind)
        parse_options(cls, spec.options, spec.name)


def resolve_model(model: str | None) -> tuple[Path, dict]:
    """The checkpoint to run: the given folder, or the embedded tiny InternVL (built once, cached)."""
    if model is None:
        from benchbench.tiny_model import ensure_tiny_model

        path = ensure_tiny_model()
        return path, {"path": str(path), "embedded_tiny_model": True, "weights": weights_hash(path)}
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(f"model {model}: no such directory; give a local checkpoint folder or omit --model")
    return path.resolve(), {"path": str(path.resolve()), "embedded_tiny_model": False, "weights": weights_hash(path)}


def run_benchmark(
    scenario: Scenario,
    workload: Workload,
    settings: RunSettings,
    model_info: dict,
    command: list[str],
    on_record: Callable[[RequestRecord], None],
) -> Manifest:
    """Run every backend of the scenario in order, updating the manifest after each."""
    from benchbench.records import BackendOutcome

    manifest = Manifest(
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command=command,
        scenario=scenario.model_dump(mode="json"),
        scenario_hash=scenario.content_hash(),
        workload_hash=workload.hash,
        repeats=workload.repeats,
        seed=scenario.seed,
        model=model_info,
        environment=fingerprint(),
        backends=[BackendOutcome(name=s.name, kind=s.kind, options=s.options) for s in scenario.backends],
    )
    write_manifest(settings.run_dir, manifest)
    sink = RecordSink(settings.run_dir)
    try:
        for index, spec in enumerate(scenario.backends):
            manifest.backends[index].status = "running"
            write_manifest(settings.run_dir, manifest)
            manifest.backends[index] = run_backend(spec, workload, settings, sink, on_record)
            write_manifest(settings.run_dir, manifest)
    finally:
        sink.close()
    return manifest
