"""Environment and reproducibility: each run's manifest in readable form and the command to run it again."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from benchbench.results.records import Manifest
from benchbench.report.document import Block, Cell, Code, Section, Table, cells
from benchbench.workload.cache import cache_statement
from benchbench.report.inputs import STAND_IN_SUFFIX, ReportInput, Run, is_stand_in

CAPABILITY_WORDS = {"streams_tokens": "streams tokens", "preprocesses_inside_engine": "preprocesses inside engine",
                    "forces_exact_tokens": "forces exact tokens", "controls_tiles": "controls tiles",
                    "reports_token_ids": "reports token ids"}


def provenance_section(data: ReportInput) -> Section:
    section = Section("environment", "Environment and reproducibility")
    for run in data.runs:
        section.blocks += _run_blocks(run, data.comparing_runs)
    return section


def _run_blocks(run: Run, many: bool) -> list[Block]:
    manifest = run.manifest
    prefix = f"{run.label}: " if many else ""
    blocks: list[Block] = [
        Table(["what", "value"], _run_rows(run), f"{prefix}run folder {run.path}"),
        Table(["backend", "kind", "engine version", "status", "load (s)", "options", "load facts", "capabilities"],
              _backend_rows(manifest), f"{prefix}backends as configured and as they reported themselves"),
        Code(recorded_command(manifest.command), f"{prefix}the command as it was run"),
        Code(reproduce_command(manifest), f"{prefix}the same run from the scenario below saved as scenario.yaml "
                                          "(CLI overrides are already folded into it)"),
        Code(scenario_yaml(manifest.scenario), f"{prefix}scenario.yaml"),
    ]
    return blocks


def _run_rows(run: Run) -> list[list[Cell]]:
    manifest = run.manifest
    environment, model, settings = manifest.environment, manifest.model, manifest.settings
    git = environment.get("git") or {}
    weights = model.get("weights") or {}
    rows = [
        cells("started", manifest.created_at),
        cells("scenario", f"{manifest.scenario.get('name')} (hash {manifest.scenario_hash[:16]})"),
        cells("workload hash", manifest.workload_hash),
        cells("repeats / seed", f"{manifest.repeats} / {manifest.seed}"),
        cells("engine caches", cache_statement(manifest.scenario.get("cache", "cold"), _resends_images(manifest.scenario))),
        cells("model", Cell(model.get("path") + _embedded_note(model), "warn" if model.get("random_weights") else "")),
        cells("weights sha256", f"{weights.get('sha256')} ({weights.get('method')})"),
        cells("dtype / device", f"{settings.get('dtype')} / {settings.get('device') or 'default'}"),
        cells("trust remote code", settings.get("trust_remote_code")),
        cells("benchbench commit", Cell(f"{git.get('commit')}" + (" (uncommitted changes)" if git.get("dirty") else ""),
                                        "warn" if git.get("dirty") else "")),
        cells("python / platform", f"{environment.get('python')} / {environment.get('platform')}"),
        cells("CPU", f"{environment.get('cpu')} ({environment.get('cpu_count')} logical), "
                     f"{environment.get('memory_gib')} GiB memory"),
        cells("GPUs", _gpus(environment)),
    ]
    for package, version in (environment.get("packages") or {}).items():
        rows.append(cells(package, version or Cell("not installed", "muted")))
    return rows


def _resends_images(scenario: dict[str, Any]) -> bool:
    """A later turn carries an earlier turn's image again (the multi-turn scenario)."""
    turns = (scenario.get("prompt") or {}).get("turns") or []
    return len(turns) > 1 and any("<image>" in (turn.get("user") or "") for turn in turns[:-1])


def _embedded_note(model: dict[str, Any]) -> str:
    if model.get("embedded_tiny_model"):
        return " (embedded tiny InternVL)"
    if model.get("random_weights"):
        return f" (embedded {model.get('embedded')}: the shape of {model.get('shape_of')} with RANDOM weights)"
    return ""


def _gpus(environment: dict[str, Any]) -> str:
    gpus = environment.get("gpus") or []
    if not gpus:
        return f"none ({environment.get('nvml_error') or 'no GPU found'})"
    listed = "; ".join(f"{g.get('index')}: {g.get('name')}, {g.get('memory_total_mib')} MiB" for g in gpus)
    return f"{listed} (driver {environment.get('driver')})"


def _backend_rows(manifest: Manifest) -> list[list[Cell]]:
    rows = []
    for outcome in manifest.backends:
        capabilities = ", ".join(word for key, word in CAPABILITY_WORDS.items() if outcome.capabilities.get(key))
        rows.append(cells(
            outcome.name + (STAND_IN_SUFFIX if is_stand_in(outcome) else ""), outcome.kind, engine_version(outcome.load_info),
            Cell(outcome.status, "good" if outcome.status == "ok" else "bad"),
            "n/a" if outcome.load_s is None else f"{outcome.load_s:.3g}",
            _compact(outcome.options), _compact(outcome.load_info), capabilities or "none",
        ))
    return rows


def engine_version(load_info: dict[str, Any]) -> Cell:
    """The engine and version a backend found (server /version, installed package, git commit)."""
    if "engine_version" not in load_info:
        return Cell("in process: see the package versions above", "muted")
    engine = load_info.get("engine") or load_info.get("dialect") or ""
    version, commit = load_info.get("engine_version"), load_info.get("engine_commit")
    if version is None and commit is None:
        return Cell(f"{engine} version not reported".strip(), "warn")
    return Cell(" ".join(str(part) for part in (engine, version, commit and f"(commit {str(commit)[:12]})") if part))


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "(none)"


class _ScenarioDumper(yaml.SafeDumper):
    """Multi-line strings (prompts) as literal blocks and short lists on one line, so it reads as written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


def _represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.SequenceNode:
    flat = all(not isinstance(item, (dict, list)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_ScenarioDumper.add_representer(str, _represent_text)
_ScenarioDumper.add_representer(list, _represent_list)


def scenario_yaml(scenario: dict[str, Any]) -> str:
    return yaml.dump(scenario, Dumper=_ScenarioDumper, sort_keys=False, allow_unicode=True).rstrip()


def recorded_command(argv: list[str]) -> str:
    """The command line as typed, from the argv the manifest kept."""
    if not argv:
        return "(not recorded)"
    program = Path(argv[0]).name
    head = ["python", argv[0]] if program.endswith(".py") and program != "__main__.py" else ["benchbench"]
    return shlex.join(head + list(argv[1:]))


def reproduce_command(manifest: Manifest) -> str:
    """A ``benchbench run`` that rebuilds the same workload on the same settings into a fresh folder."""
    argv = ["benchbench", "run", "--scenario", "scenario.yaml"]
    if manifest.model.get("embedded"):
        argv += ["--model", f"embedded:{manifest.model['embedded']}"]
    elif not manifest.model.get("embedded_tiny_model"):
        argv += ["--model", str(manifest.model.get("path"))]
    if manifest.settings.get("device"):
        argv += ["--device", str(manifest.settings["device"])]
    if manifest.settings.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    return shlex.join(argv + ["--output-dir", f"{manifest.scenario.get('name')}-again"])
