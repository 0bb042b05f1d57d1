"""Command line: parse, call the library, print. Errors users can fix print one line and exit 2."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import NoReturn

import click

from benchbench.errors import BenchError

EXIT_BACKEND_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
PRINTED_METRICS = ("req_s", "output_tok_s", "preprocess_s_p50", "ttft_s_p50", "tpot_s_p50", "e2e_s_p50")
"""The run's printed summary: published names from benchbench.results.metrics."""


def friendly_errors(command):
    """Turn BenchError into a one-line message and a non-zero exit; bugs still raise."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}".replace("\n", "\\n"), err=True)  # always one line
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _numbers(kind: type) -> click.ParamType:
    """A comma-separated list of numbers (``1,4,16``)."""

    class Numbers(click.ParamType):
        name = "LIST"

        def convert(self, value, param, ctx):
            if isinstance(value, (list, tuple)):
                return value
            try:
                return [kind(part) for part in str(value).split(",") if part.strip()]
            except ValueError:
                self.fail(f"{value!r}: give numbers separated by commas, e.g. 1,4,16", param, ctx)

    return Numbers()


class _NoteHandler(logging.Handler):
    """Library warnings (e.g. a repaired results file) reach the user as one ``note:`` line each."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {record.getMessage()}".replace("\n", "\\n"), err=True)


@click.group()
@click.version_option(package_name="benchbench")
def main() -> None:
    """Fair, verified benchmarks of InternVL inference across engines."""
    logger = logging.getLogger("benchbench")
    if not any(isinstance(handler, _NoteHandler) for handler in logger.handlers):
        logger.addHandler(_NoteHandler(logging.WARNING))
        logger.propagate = False


@main.command()
@click.option("--scenario", "scenario_name", default="10x-image", show_default=True, help="Built-in name or YAML path.")
@click.option("--model", default=None, help="Checkpoint folder, or embedded:internvl2_5-1b|-2b|-8b (real shape, "
              "random weights); omitted: the embedded tiny InternVL.")
@click.option("--backend", "backends", multiple=True, help="Backend kind (repeatable); replaces the scenario's list.")
@click.option("--url", default=None, help="Server URL for openai/lightllm backends given with --backend.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=None, help="Run folder [reports/<scenario>-<time>].")
@click.option("--requests", type=int, default=None, help="Measured requests (overrides the scenario).")
@click.option("--warmup", type=int, default=None, help="Warmup requests, recorded and excluded.")
@click.option("--repeats", type=int, default=None, help="Times the measured requests are repeated.")
@click.option("--max-new-tokens", type=int, default=None, help="Exact output tokens per request.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default=None)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default placement for in-process engines.")
@click.option("--request-timeout", type=float, default=None, help="Seconds one request may take [600].")
@click.option("--load-timeout", type=float, default=None,
              help="Seconds loading a backend may take, its network probes included [1800].")
@click.option("--backend-timeout", type=float, default=None, help="Seconds one backend may take in all [none].")
@click.option("--option", "backend_options", multiple=True, metavar="BACKEND.KEY=VALUE",
              help="Set a backend option, e.g. openai.dialect=transformers (repeatable).")
@click.option("--load-8bit", is_flag=True, help="Transformers backends: 8-bit weights (bitsandbytes, CUDA).")
@click.option("--load-4bit", is_flag=True, help="Transformers backends: 4-bit weights (bitsandbytes, CUDA).")
@click.option("--trust-remote-code", is_flag=True, help="Allow remote-code checkpoints (recorded in the manifest).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Finish an interrupted run folder without redoing finished requests.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--concurrency", type=_numbers(int), default=None, help="Load points: closed loop, e.g. 1,4,16.")
@click.option("--rate", type=_numbers(float), default=None, help="Load points: open loop in requests/s, e.g. 1,2,4.")
@click.option("--sweep", type=int, default=None, help="Load: serial, saturated, then this many rates between.")
@click.option("--arrivals", type=click.Choice(["poisson", "constant", "gamma"]), default=None, help="Open-loop arrivals.")
@click.option("--client-processes", type=int, default=None, help="Load: processes sending to a server (more when one cannot keep up).")
@click.option("--gate", "gates_path", type=click.Path(path_type=Path), default=None,
              help="gates.yaml naming a baseline: gate the run (exit 0 pass, 1 regression, 2 cannot judge).")
@friendly_errors
def run(scenario_name, model, backends, url, output_dir, requests, warmup, repeats, max_new_tokens, dtype, device,
        request_timeout, load_timeout, backend_timeout, backend_options, load_8bit, load_4bit, trust_remote_code, resume_dir, no_progress,
        concurrency, rate, sweep, arrivals, client_processes, gates_path) -> None:
    """Run a scenario through its backends and write a report."""
    from benchbench import api

    gates = _gates_for_run(gates_path) if gates_path else None
    if resume_dir:
        _refuse_flags_with_resume(click.get_current_context())
    options = api.RunOptions(
        requests=requests, warmup=warmup, repeats=repeats or (gates and gates.repeats), max_new_tokens=max_new_tokens,
        dtype=dtype, backends=backends, url=url, backend_options=backend_options, load_8bit=load_8bit,
        load_4bit=load_4bit, request_timeout_s=request_timeout, load_timeout_s=load_timeout, backend_timeout_s=backend_timeout, model=model,
        device=device, output_dir=output_dir, trust_remote_code=trust_remote_code, command=sys.argv,
        concurrency=concurrency or (), rate=rate or (), sweep=sweep, arrivals=arrivals, client_processes=client_processes,
    )
    progress = _Progress(enabled=not no_progress)
    interrupted = False
    with progress, _terminate_as_interrupt():
        try:
            result = api.resume(resume_dir, progress) if resume_dir else api.run(scenario_name, options, progress)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        _after_interrupt(progress.run_dir)
    _print_outcome(result.run_dir, result.manifest, result.report_path)
    if gates:
        sys.exit(_gate(result.run_dir, gates.baseline, gates.rules, gates.allow_different_hardware))
    sys.exit(0 if result.ok else EXIT_BACKEND_FAILED)


RESUME_FLAGS = {"resume_dir", "no_progress", "gates_path"}


def _refuse_flags_with_resume(context: click.Context) -> None:
    """A resumed run runs as recorded; a flag that would change it is refused rather than silently ignored."""
    given = [param for param in context.command.params if param.name not in RESUME_FLAGS
             and context.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT]
    if given:
        flags = ", ".join(param.opts[0] for param in given)
        raise BenchError(f"--resume continues a run exactly as it was recorded, so {flags} cannot apply; "
                         "drop them, or start a new run with them")


def _after_interrupt(run_dir: Path | None) -> NoReturn:
    """After Ctrl-C or SIGTERM: more of them are ignored (a second Ctrl-C must not turn 130 into a
    traceback or click's "Aborted!"), the folder is left for --resume or 'benchbench report', exit 130."""
    import signal

    from benchbench.results.records import read_manifest

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if run_dir is None:
        click.echo("interrupted before the run folder was written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    manifest = read_manifest(run_dir)
    if manifest.report_status == "written":
        _print_outcome(run_dir, manifest, run_dir / "report.html")
    else:
        click.echo(f"interrupted while the report was written; 'benchbench report {run_dir}' completes it", err=True)
    if any(outcome.status != "ok" for outcome in manifest.backends):
        click.echo(f"interrupted: finished records are kept; continue with --resume {run_dir}", err=True)
    sys.exit(EXIT_INTERRUPTED)


class _terminate_as_interrupt:
    """SIGTERM handled like Ctrl-C, so a killed run still closes its manifest and report."""

    def __enter__(self):
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        self._interrupt = interrupt
        self._previous = signal.signal(signal.SIGTERM, interrupt)

    def __exit__(self, *exc_info) -> None:
        import signal

        if signal.getsignal(signal.SIGTERM) is self._interrupt:  # not once an interruption ignores it
            signal.signal(signal.SIGTERM, self._previous)


class _Progress:
    """A tqdm bar on stderr that advances by one per finished record (a RunObserver)."""

    def __init__(self, enabled: bool):
        self.enabled, self.run_dir, self._bar = enabled, None, None

    def started(self, run_dir: Path, total_requests: int) -> None:
        from tqdm import tqdm

        self.run_dir = run_dir
        self._bar = tqdm(total=total_requests, unit="req", disable=not self.enabled, file=sys.stderr, dynamic_ncols=True)

    def record(self, record) -> None:
        self._bar.set_postfix_str(f"{record.backend} {record.phase} {record.request_id}")
        self._bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.close()


def _print_outcome(run_dir: Path, manifest, report_path: Path) -> None:
    import pandas as pd

    summary = pd.read_csv(run_dir / "summary.csv")  # the report's own summary, not computed again
    columns = {"backend": "backend", "point": "point", "requests": "requests", "unfair_requests": "unfair"}
    if "point" not in summary:  # a serial run: one row per backend
        del columns["point"]
    if not summary.empty:  # metrics under their registry names, as in summary.csv and gate rules
        table = summary.reindex(columns=[*columns, *PRINTED_METRICS]).rename(columns=columns)
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for outcome in manifest.backends:
        if outcome.status != "ok":
            click.echo(f"FAILED backend {outcome.name}: {outcome.error}", err=True)
    unfair = int(summary["unfair_requests"].sum()) if not summary.empty else 0
    if unfair:
        click.echo(f"WARNING: {unfair} measured request(s) violated fairness; see the report's fairness table", err=True)
    click.echo(f"workload {manifest.workload_hash[:16]}  report: {report_path}")


@main.command()
@click.argument("sweep_file", required=False, type=click.Path(path_type=Path))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None, help="Sweep folder [reports/sweep-<file>-<time>].")
@click.option("--dry-run", is_flag=True, help="Print the plan (cells, skipped combinations, size) and stop.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Overrides the sweep file's executor.")
@click.option("--ray-address", default=None, help="Ray cluster HOST:PORT [the file's ray.address, RAY_ADDRESS, else a local instance].")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Run only the cells of this sweep folder that did not finish.")
@friendly_errors
def sweep(sweep_file, output_dir, dry_run, executor, ray_address, resume_dir) -> None:
    """Run a matrix of cells (scenario settings x backends x options x models), each an isolated run, and one report."""
    from benchbench.sweep import run as sweeps
    from benchbench.sweep.executors import open_executor
    from benchbench.sweep.folder import create_sweep_dir, load_record, new_record, save_record
    from benchbench.sweep.matrix import expand
    from benchbench.sweep.spec import load_sweep, stored_spec

    if (sweep_file is None) == (resume_dir is None):
        raise BenchError("sweep: give a sweep file, or --resume SWEEP_DIR to finish one")
    if resume_dir:
        record = load_record(resume_dir)
        spec, cells = stored_spec(record.spec), record.unfinished()
        if not cells:
            raise BenchError(f"sweep folder {resume_dir}: every cell already finished; nothing to resume")
        click.echo(f"resuming {len(cells)} of {len(record.cells)} cell(s): {', '.join(cell.id for cell in cells)}")
    else:
        spec, text = load_sweep(sweep_file)
        plan = expand(spec)
        cells = plan.cells
        click.echo("\n".join(sweeps.describe_plan(plan, executor or spec.executor)))
        if dry_run:
            return
    with open_executor(executor or spec.executor, ray_address or spec.ray.address, cells) as runner:
        sweep_dir = resume_dir or create_sweep_dir(output_dir or sweeps.default_sweep_dir(sweep_file))
        if not resume_dir:
            record = new_record(text, spec.model_dump(mode="json"), cells, [vars(s) for s in plan.skipped])
            save_record(sweep_dir, record)
        with _terminate_as_interrupt():
            try:
                record = sweeps.run_cells(sweep_dir, record, runner, click.echo)
            except KeyboardInterrupt:
                _print_sweep(sweep_dir)
                click.echo(f"interrupted: finished cells are kept; continue with --resume {sweep_dir}", err=True)
                sys.exit(EXIT_INTERRUPTED)
    sys.exit(_print_sweep(sweep_dir))


def _print_sweep(sweep_dir: Path) -> int:
    """Write the sweep report, print where it is and what did not finish; the sweep's exit code."""
    from benchbench.sweep.folder import load_record
    from benchbench.sweep.report import write_sweep_report

    report_path = write_sweep_report(sweep_dir)
    record = load_record(sweep_dir)
    unfinished = [cell for cell in record.cells if record.outcomes[cell.id].status != "ok"]
    for cell in unfinished:
        outcome = record.outcomes[cell.id]
        click.echo(f"{outcome.status.upper()} cell {cell.id}: {outcome.reason}", err=True)
    click.echo(f"{len(record.cells) - len(unfinished)} of {len(record.cells)} cell(s) finished  report: {report_path}")
    return EXIT_BACKEND_FAILED if unfinished else 0


@main.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from benchbench.config.scenario import builtin_names, load_scenario

    for name in builtin_names():
        scenario = load_scenario(name)
        click.echo(f"{name:<14} {' '.join(scenario.description.split())}")


@main.command()
@click.option("--layers", type=int, default=None, help="LLM decoder layers (or use --model-name).")
@click.option("--model-name", default=None, help="A known InternVL name, e.g. InternVL2_5-78B.")
@click.option("--gpus", type=int, required=True)
@click.option("--vit-alpha", type=float, default=0.5, show_default=True)
@click.option("--family", type=click.Choice(["remote", "hf"]), default="remote", show_default=True)
@friendly_errors
def devicemap(layers, model_name, gpus, vit_alpha, family) -> None:
    """Print InternVL's split_model device map for a GPU count."""
    from benchbench.models.devicemap import layers_for_model, split_model_plan

    if (layers is None) == (model_name is None):
        raise BenchError("devicemap: give exactly one of --layers or --model-name")
    click.echo(split_model_plan(layers if layers is not None else layers_for_model(model_name), gpus, vit_alpha, family).format())


REFERENCE_HELP = "Backend the others' speed is relative to [the first with measurements]."


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--reference", default=None, help=REFERENCE_HELP)
@friendly_errors
def report(run_dir: Path, reference: str | None) -> None:
    """Rebuild a run's (or a sweep folder's) report from its folder alone."""
    from benchbench import api

    click.echo(f"report: {api.report(run_dir, reference=reference)}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None, help="Report folder [reports/compare-<time>].")
@click.option("--reference", default=None, help=REFERENCE_HELP + " Backends are named <run>/<backend>.")
@click.option("--allow-different-workloads", is_flag=True, help="Compare runs whose workload hashes differ.")
@friendly_errors
def compare(run_dirs: tuple[Path, ...], output_dir: Path | None, reference: str | None, allow_different_workloads: bool) -> None:
    """One report across run folders (e.g. before and after an upgrade)."""
    from benchbench import api

    click.echo(f"report: {api.compare(run_dirs, output_dir, reference, allow_different_workloads)}")


@main.group()
def baseline() -> None:
    """Baselines a gate compares runs against."""


@baseline.command("save")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--to", "path", type=click.Path(path_type=Path), required=True, help="Baseline JSON file to write.")
@friendly_errors
def baseline_save(run_dir: Path, path: Path) -> None:
    """Store what a gate needs from a finished, fair run: repeat-level samples, outputs, workload, environment."""
    from benchbench.gate.baseline import check_fit_for_baseline, save_baseline, snapshot_run
    from benchbench.gate.rules import DEFAULT_REPEATS
    from benchbench.sweep.folder import is_sweep_dir
    from benchbench.sweep.gate import save_sweep_baseline

    if is_sweep_dir(run_dir):
        cells = save_sweep_baseline(run_dir, path).cells
        click.echo(f"baseline: {path}  sweep of {len(cells)} cell(s), each gated on its own")
        return
    saved = snapshot_run(run_dir)
    check_fit_for_baseline(saved)
    save_baseline(saved, path)
    backends = ", ".join(f"{name} ({b.repeats} repeats)" for name, b in saved.backends.items())
    click.echo(f"baseline: {path}  workload {saved.workload_hash[:16]}  {backends}")
    if any(b.repeats < DEFAULT_REPEATS for b in saved.backends.values()):
        click.echo(f"note: the default gate rules are tuned for {DEFAULT_REPEATS} repeats (docs/ci.md)", err=True)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path), default=None,
              help="Baseline file [the gates file's 'baseline'].")
@click.option("--rule", "rule_texts", multiple=True, help="NAME: SPEC, e.g. 'output_tok_s: -5%' (repeatable).")
@click.option("--rules", "gates_path", type=click.Path(path_type=Path), default=None,
              help="gates.yaml with rules (and optionally the baseline); --rule overrides it per metric.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write JUnit XML, a test case per rule.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), default=None,
              help="Append the Markdown summary here ($GITHUB_STEP_SUMMARY gets it when set).")
@click.option("--allow-different-hardware", is_flag=True, help="Judge timings even if CPU/GPU models differ.")
@friendly_errors
def gate(run_dir, baseline_path, rule_texts, gates_path, junit, markdown_path, allow_different_hardware) -> None:
    """Gate a run against a baseline: exit 0 pass, 1 regression, 2 cannot judge."""
    from benchbench.gate.rules import load_gate_file, merge_rules, parse_rule

    gates = load_gate_file(gates_path) if gates_path else None
    rules = merge_rules(gates.rules if gates else [], [parse_rule(text) for text in rule_texts])
    baseline_path = baseline_path or (gates.baseline if gates else None)
    if baseline_path is None:
        raise BenchError("gate: give --baseline FILE (or a --rules file with 'baseline:')")
    allow = allow_different_hardware or bool(gates and gates.allow_different_hardware)
    sys.exit(_gate(run_dir, baseline_path, rules, allow, junit, markdown_path))


def _gate(run_dir: Path, baseline_path: Path, rules: list, allow_different_hardware: bool,
          junit: Path | None = None, markdown_path: Path | None = None) -> int:
    """Judge the run, print the table, write the Markdown/JUnit outputs; the gate's exit code."""
    import os

    from benchbench import api
    from benchbench.gate import output as gate_report

    result = api.gate(run_dir, baseline_path, rules, allow_different_hardware)
    click.echo(gate_report.console(result, str(baseline_path), str(run_dir)))
    summary = gate_report.markdown(result, str(baseline_path), str(run_dir))
    for path in dict.fromkeys(str(p) for p in (markdown_path, os.environ.get("GITHUB_STEP_SUMMARY")) if p):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(summary)
    if junit:
        Path(junit).write_text(gate_report.junit_xml(result), encoding="utf-8")
    return result.exit_code


def _gates_for_run(gates_path: Path):
    """The gates file of ``run --gate``, its baseline read up front so a bad one fails before the run."""
    from benchbench.gate.baseline import load_baseline
    from benchbench.gate.rules import load_gate_file

    gates = load_gate_file(gates_path)
    if gates.baseline is None:
        raise BenchError(f"gates file {gates_path}: name the baseline ('baseline: FILE') to use it with --gate")
    load_baseline(gates.baseline)
    return gates
