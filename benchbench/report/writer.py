"""Build a report from run folders alone and write it: report.md, report.html, PNG plots, CSV tables.

Everything but the one "Generated ..." line is a function of the records and manifests, so
rebuilding a report gives identical bytes apart from that line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.files import FileError
from benchbench.report.checks import fairness_section, problems
from benchbench.report.document import Document, Section
from benchbench.report.inputs import ReportInput, load_input
from benchbench.report.load import load_section
from benchbench.report.outputs import outputs_section
from benchbench.report.per_point import load_headline_section, per_point
from benchbench.report.performance import (
    headline_section,
    latency_section,
    option_sweep_sections,
    sweep_section,
    turns_section,
    throughputs,
)
from benchbench.report.provenance import provenance_section
from benchbench.report.render import render_html, render_markdown
from benchbench.report.resources import resources_section
from benchbench.results.summary import summarize

GENERATED_PREFIX = "Generated "


def write_report(run_dir: Path, reference: str | None = None) -> Path:
    """Rebuild one run's report inside its folder; returns the path of report.html."""
    run_dir = Path(run_dir)
    data = load_input([run_dir], reference)
    return _write(data, run_dir, f"benchbench report: {data.runs[0].manifest.scenario.get('name')}")


def write_comparison(
    run_dirs: Sequence[Path], output_dir: Path, reference: str | None = None, allow_different_workloads: bool = False
) -> Path:
    """One report across several runs (backends labelled ``<run>/<backend>``); returns report.html's path."""
    output_dir = Path(output_dir)
    if any(output_dir.resolve() == Path(run).resolve() for run in run_dirs):
        raise BenchError(f"--output-dir {output_dir}: that is one of the compared runs; choose a separate folder")
    data = load_input([Path(run) for run in run_dirs], reference, allow_different_workloads)
    return _write(data, output_dir, "benchbench comparison: " + " vs ".join(run.label for run in data.runs))


def _write(data: ReportInput, out_dir: Path, title: str) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return _write_files(data, out_dir, title)
    except OSError as exc:
        raise FileError(f"report folder {out_dir}: cannot write ({exc.strerror}); free space or make it writable "
                        "(or copy the run folder somewhere writable), then run 'benchbench report' again") from None


def _write_files(data: ReportInput, out_dir: Path, title: str) -> Path:
    summarize(data.records).to_csv(out_dir / "summary.csv", index=False, float_format="%.6g")
    compared = per_point(data) if data.under_load else data  # a load run's engines are compared point by point
    results = throughputs(compared)
    checks = problems(data)
    flagged = any(getattr(block, "tone", "") == "bad" for block in checks)
    sections = [Section("checks", "Problems: read first" if flagged else "Checks", checks)]
    sections += [section for section in (load_section(data, out_dir),) if section is not None]
    headline = (load_headline_section(data, compared, results, out_dir) if data.under_load
                else headline_section(data, results, out_dir))
    sections += [headline, latency_section(compared, out_dir)]
    sections += [section for section in (turns_section(compared), sweep_section(compared, out_dir)) if section is not None]
    sections += option_sweep_sections(compared, results, out_dir)
    sections += [section for section in (resources_section(data, out_dir),) if section is not None]
    sections += [fairness_section(data), outputs_section(data, out_dir), provenance_section(data)]
    document = Document(title, _subtitle(data), _generated_line(), sections)
    (out_dir / "report.md").write_text(render_markdown(document), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(document), encoding="utf-8")
    return out_dir / "report.html"


def _subtitle(data: ReportInput) -> str:
    manifests = [run.manifest for run in data.runs]
    scenarios = " / ".join(dict.fromkeys(str(m.scenario.get("name")) for m in manifests))
    workloads = " / ".join(dict.fromkeys(m.workload_hash[:12] for m in manifests))
    models = {"embedded tiny InternVL" if m.model.get("embedded_tiny_model") else str(m.model.get("path")) for m in manifests}
    measured = sum(1 for r in data.records if r.phase == "measure")
    return (f"scenario {scenarios} · workload {workloads} · model {' / '.join(sorted(models))} · "
            f"{len(data.backends)} backend(s) · {measured} measured requests · reference {_reference(data)}")


def _reference(data: ReportInput) -> str:
    return data.reference.label if data.reference else "none"


def _generated_line() -> str:
    try:
        version = metadata.version("benchbench")
    except metadata.PackageNotFoundError:
        version = "(source tree)"
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return f"{GENERATED_PREFIX}{stamp} by benchbench {version}"
