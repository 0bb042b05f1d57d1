"""A run folder's life: created, manifest and workload written, every backend run in turn
(isolated), resumed. Settings arrive already merged (``config.overrides``, ``api``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from benchbench.backends.base import parse_options
from benchbench.backends.url import check_reachable
from benchbench.environment import fingerprint, weights_hash
from benchbench.errors import BenchError, ModelError
from benchbench.execution.runlock import LOCK_FILE
from benchbench.execution.isolation import Timeouts, run_isolated
from benchbench.results.records import (
    MANIFEST_FILE,
    RESULTS_FILE,
    BackendOutcome,
    Manifest,
    RequestRecord,
    read_manifest,
    repair_tail,
    write_manifest,
)
from benchbench.backends.registry import backend_class
from benchbench.execution.runner import RunSettings
from benchbench.config.scenario import Scenario, parse_scenario
from benchbench.workload.build import Workload, build_workload
from benchbench.workload.store import has_saved_workload, load_workload, save_workload

REPORTS_ROOT = Path("reports")


def default_run_dir(scenario: Scenario) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS_ROOT / f"{scenario.name}-{stamp}"


def create_run_dir(path: Path, owned: tuple[str, ...] = ()) -> Path:
    """A fresh, writable run folder: new or empty but for ``owned`` (files the caller put there for this run),
    so a run never overwrites a file it did not write."""
    try:
        held = sorted(entry.name for entry in path.iterdir() if entry.name not in owned) if path.is_dir() else []
        if {RESULTS_FILE, MANIFEST_FILE, LOCK_FILE} & set(held):
            raise BenchError(f"output folder {path}: already holds a run; choose another --output-dir (or --resume {path})")
        if held:
            raise BenchError(f"output folder {path}: already holds files ({', '.join(held[:3])}); a run writes "
                             "report.md, summary.csv and more: choose a new or empty --output-dir")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"output folder {path}: not usable ({exc.strerror}); choose another --output-dir") from None
    return path


def check_backends(scenario: Scenario) -> None:
    """Fail before anything runs if a backend kind or option is wrong, or its server does not answer."""
    for spec in scenario.backends:
        cls = backend_class(spec.kind)
        url = getattr(parse_options(cls, spec.options, spec.name), "url", None)
        if url:
            check_reachable(url, spec.name)


def resolve_model(model: str | None) -> tuple[Path, dict]:
    """The checkpoint to run: the given folder, an ``embedded:NAME`` model of real dimensions with
    random weights, or the embedded tiny InternVL (each built once, cached)."""
    from benchbench.models.embedded import ensure_embedded_model, is_embedded

    if model is None:
        from benchbench.models.tiny import ensure_tiny_model

        path = ensure_tiny_model()
        return path, {"path": str(path), "embedded_tiny_model": True, "weights": weights_hash(path)}
    if is_embedded(model):
        path, facts = ensure_embedded_model(model)
        return path, {"path": str(path), "embedded_tiny_model": False, **facts, "weights": weights_hash(path)}
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(f"model {model}: no such directory; give a local checkpoint folder, embedded:NAME, or omit --model")
    return path.resolve(), {"path": str(path.resolve()), "embedded_tiny_model": False, "weights": weights_hash(path)}


def start_run(
    scenario: Scenario, workload: Workload, settings: RunSettings, model_info: dict, command: list[str]
) -> Manifest:
    """Write the run's manifest before anything runs: a crash still leaves a readable folder."""
    manifest = Manifest(
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command=command,
        scenario=scenario.model_dump(mode="json"),
        scenario_hash=scenario.content_hash(),
        workload_hash=workload.hash,
        repeats=workload.repeats,
        seed=scenario.seed,
        model=model_info,
        settings={"model_path": str(settings.model_path), "dtype": settings.dtype, "device": settings.device,
                  "seed": settings.seed, "trust_remote_code": settings.trust_remote_code},
        environment=fingerprint(),
        backends=[BackendOutcome(name=s.name, kind=s.kind, options=s.options) for s in scenario.backends],
    )
    save_workload(settings.run_dir, workload)
    write_manifest(settings.run_dir, manifest)
    (settings.run_dir / RESULTS_FILE).touch()
    return manifest


def recorded_workload(run_dir: Path, manifest: Manifest) -> tuple[Scenario, Workload]:
    """The scenario and the workload a run folder saved (its hash checked against the manifest).

    A folder from before workloads were saved gets its workload rebuilt, checked and saved once.
    """
    scenario = parse_scenario(manifest.scenario, source=f"manifest of {run_dir}")
    if has_saved_workload(run_dir):
        return scenario, load_workload(run_dir, manifest.workload_hash)
    workload = build_workload(scenario)
    if workload.hash != manifest.workload_hash:
        raise BenchError(f"run folder {run_dir}: its workload hash no longer matches (image files changed); start a new run")
    save_workload(run_dir, workload)
    return scenario, workload


def load_for_resume(run_dir: Path) -> tuple[Scenario, Workload, Manifest]:
    """The scenario, workload and manifest of an unfinished run."""
    manifest = read_manifest(run_dir)
    scenario, workload = recorded_workload(run_dir, manifest)
    if all(outcome.status == "ok" for outcome in manifest.backends):
        raise BenchError(f"run folder {run_dir}: every backend already finished; nothing to resume")
    return scenario, workload, manifest


def run_backends(
    scenario: Scenario, manifest: Manifest, run_dir: Path, on_record: Callable[[RequestRecord], None]
) -> Manifest:
    """Run each unfinished backend in its own worker process, updating the manifest after each.

    On Ctrl-C or SIGTERM the backend under way is marked interrupted (its finished records stay
    on disk) before the interruption propagates.
    """
    timeouts = Timeouts(**scenario.timeouts.model_dump())
    for index, spec in enumerate(scenario.backends):
        if manifest.backends[index].status == "ok":
            continue
        repair_tail(run_dir)  # a worker killed mid-write left half a line; the next must not be glued to it
        manifest.backends[index].status = "running"
        write_manifest(run_dir, manifest)
        try:
            manifest.backends[index] = run_isolated(index, spec, run_dir, timeouts, on_record)
        except BaseException as exc:
            manifest.backends[index].status = "interrupted"
            manifest.backends[index].error = f"interrupted ({type(exc).__name__}); finish it with --resume {run_dir}"
            raise
        finally:
            write_manifest(run_dir, manifest)
    return manifest
