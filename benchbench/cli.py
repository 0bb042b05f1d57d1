"""Command line: parse, call the library, print. Errors users can fix print one line and exit 2."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from benchbench.errors import BenchError

EXIT_BACKEND_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def friendly_errors(command):
    """Turn BenchError into a one-line message and a non-zero exit; bugs still raise."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


@click.group()
@click.version_option(package_name="benchbench")
def main() -> None:
    """Fair, verified benchmarks of InternVL inference across engines."""


@main.command()
@click.option("--scenario", "scenario_name", default="10x-image", show_default=True, help="Built-in name or YAML path.")
@click.option("--model", default=None, help="Checkpoint folder; omitted: the embedded tiny InternVL.")
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
@click.option("--backend-timeout", type=float, default=None, help="Seconds one backend may take in all [none].")
@click.option("--trust-remote-code", is_flag=True, help="Allow remote-code checkpoints (recorded in the manifest).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Finish an interrupted run folder without redoing finished requests.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@friendly_errors
def run(scenario_name, model, backends, url, output_dir, requests, warmup, repeats, max_new_tokens, dtype, device,
        request_timeout, backend_timeout, trust_remote_code, resume_dir, no_progress) -> None:
    """Run a scenario through its backends and write a report."""
    from benchbench import bench
    from benchbench.runner import RunSettings
    from benchbench.scenario import load_scenario
    from benchbench.workload import build_workload

    if resume_dir:
        scenario, manifest = bench.load_for_resume(resume_dir)
        workload, run_dir = build_workload(scenario), resume_dir
    else:
        scenario = load_scenario(scenario_name)
        overrides = dict(requests=requests, warmup=warmup, repeats=repeats, max_new_tokens=max_new_tokens, dtype=dtype)
        if backends:
            overrides["backends"] = bench.backend_specs(backends, url)
        elif url:
            raise BenchError("--url goes with --backend openai or --backend lightllm")
        if request_timeout or backend_timeout:
            overrides["timeouts"] = {**scenario.timeouts.model_dump(), "request_s": request_timeout or scenario.timeouts.request_s,
                                     "backend_s": backend_timeout or scenario.timeouts.backend_s}
        scenario = scenario.with_overrides(**overrides)
        bench.check_backends(scenario)
        model_path, model_info = bench.resolve_model(model)
        workload = build_workload(scenario)
        run_dir = bench.create_run_dir(output_dir or bench.default_run_dir(scenario))
        settings = RunSettings(run_dir, model_path, scenario.dtype, device, scenario.seed, trust_remote_code)
        manifest = bench.start_run(scenario, workload, settings, model_info, sys.argv)
    total = len(scenario.backends) * (len(workload.warmup) + len(workload.measured) * workload.repeats)
    with _progress(total, enabled=not no_progress) as advance, _terminate_as_interrupt():
        try:
            manifest = bench.run_backends(scenario, manifest, run_dir, advance)
        except KeyboardInterrupt:
            _print_outcome(run_dir, bench.read_manifest(run_dir))
            click.echo(f"interrupted: finished records are kept; continue with --resume {run_dir}", err=True)
            sys.exit(EXIT_INTERRUPTED)
    _print_outcome(run_dir, manifest)
    sys.exit(EXIT_BACKEND_FAILED if any(b.status != "ok" for b in manifest.backends) else 0)


class _terminate_as_interrupt:
    """SIGTERM handled like Ctrl-C, so a killed run still closes its manifest and report."""

    def __enter__(self):
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        self._previous = signal.signal(signal.SIGTERM, interrupt)

    def __exit__(self, *exc_info) -> None:
        import signal

        signal.signal(signal.SIGTERM, self._previous)


class _progress:
    """A tqdm bar on stderr that advances by one per finished record."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="req", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def __enter__(self):
        def advance(record) -> None:
            self._bar.set_postfix_str(f"{record.backend} {record.phase} {record.request_id}")
            self._bar.update(1)

        return advance

    def __exit__(self, *exc_info) -> None:
        self._bar.close()


def _print_outcome(run_dir: Path, manifest) -> None:
    from benchbench.records import read_records
    from benchbench.report import write_report
    from benchbench.summary import summarize

    report_path = write_report(run_dir)
    summary = summarize(read_records(run_dir))
    columns = {"backend": "backend", "requests": "requests", "unfair_requests": "unfair", "req_s": "req/s",
               "output_tok_s": "out tok/s", "preprocess_s_median": "preproc s", "ttft_s_median": "TTFT s",
               "e2e_s_median": "e2e s"}
    if not summary.empty:
        click.echo(summary.reindex(columns=list(columns)).rename(columns=columns).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for outcome in manifest.backends:
        if outcome.status != "ok":
            click.echo(f"FAILED backend {outcome.name}: {outcome.error}", err=True)
    unfair = int(summary["unfair_requests"].sum()) if not summary.empty else 0
    if unfair:
        click.echo(f"WARNING: {unfair} measured request(s) violated fairness; see the report's fairness table", err=True)
    click.echo(f"workload {manifest.workload_hash[:16]}  report: {report_path}")


@main.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from benchbench.scenario import builtin_names, load_scenario

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
    from benchbench.devicemap import layers_for_model, split_model_plan

    if (layers is None) == (model_name is None):
        raise BenchError("devicemap: give exactly one of --layers or --model-name")
    click.echo(split_model_plan(layers or layers_for_model(model_name), gpus, vit_alpha, family).format())


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@friendly_errors
def report(run_dir: Path) -> None:
    """Rebuild a run's report from results.jsonl and manifest.json."""
    from benchbench.report import write_report

    click.echo(f"report: {write_report(run_dir)}")
