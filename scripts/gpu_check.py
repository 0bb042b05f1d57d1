"""The one-shot GPU check behind scripts/gpu_check.sh (read that file first).

Runs, each as a real ``python -m benchbench run`` into its own run folder: ``10x-image`` with
placement ``cuda`` and ``auto``, ``tiles-sweep``, and the Transformers backend against
``transformers serve`` of the same model through the OpenAI backend (dialect transformers), and
``serve-sweep`` (concurrency 1-8) of in-process static batching against ``transformers serve
--continuous-batching`` where the installed transformers has it (``--only serve-sweep``). Then
checks every run folder (each backend ok, every request fair, no CUDA error in any log), prints one
summary table, and packs the run folders, the logs and the summary into one archive in OUTDIR
(beside it, the summary as text; the run folders themselves are built in a temporary folder).
Exit 0 only when every check passed; the archive is written either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchbench.errors import BenchError  # noqa: E402
from benchbench.execution.launch import ServerError, ServerSpec, free_port, launch  # noqa: E402
from benchbench.results.records import read_manifest, read_records  # noqa: E402

BUDGET_S = {"cuda": 8 * 60, "cpu": 30 * 60}
CPU_REHEARSAL = ["--requests", "2", "--max-new-tokens", "8"]  # the same code paths, fewer requests: CPUs are slow
RESERVE_S = 20  # kept for the checks, the summary and the archive
CUDA_ERRORS = ("CUDA error", "CUBLAS_STATUS", "CUDNN_STATUS", "device-side assert", "illegal memory access",
               "CUDA out of memory", "NCCL error", "cudaError")  # fmt: skip
SUMMARY_COLUMNS = ("req_s", "output_tok_s", "ttft_s_median", "ttft_s_p50", "e2e_s_median", "e2e_s_p50")
RESOURCE_COLUMNS = ("load_gpu_mem_peak_mib", "gpu_mem_peak_mib", "sm_util_mean_pct", "power_mean_w", "joules_per_token",
                    "host_rss_peak_mib")  # fmt: skip


@dataclass
class Step:
    name: str
    argv: list[str]
    needs_server: bool = False
    continuous_batching: bool = False
    default: bool = True
    """run without --only (the load step is asked for by name: the default check keeps its 8 minutes)"""
    run_dir: Path | None = None
    problems: list[str] = field(default_factory=list)
    wall_s: float | None = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--model", default="embedded:internvl2_5-1b", help="checkpoint folder or embedded:NAME")
    parser.add_argument("--only", action="append", default=[], metavar="STEP", help="run only this step (repeatable)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    args.outdir.mkdir(parents=True, exist_ok=True)
    # Run folders live outside OUTDIR: only the archive and the summary land there (few files to copy back).
    work = Path(tempfile.mkdtemp(prefix="gpu-check-")) / f"gpu-check-{stamp}"
    work.mkdir()
    say(f"gpu_check: device {args.device}, model {args.model}, work folder {work}")
    model_dir, build_s = build_model(args.model)
    say(f"model ready in {build_s:.1f} s: {model_dir}")
    steps = plan(args.device, str(model_dir) if not args.model.startswith("embedded:") else args.model)
    unknown = set(args.only) - {step.name for step in steps}
    if unknown:
        say(f"--only {', '.join(sorted(unknown))}: no such step; steps here: {', '.join(s.name for s in steps)}")
        return 2
    steps = [step for step in steps if step.name in args.only] if args.only else [step for step in steps if step.default]
    budget_s = BUDGET_S[args.device]
    for step in steps:
        remaining = budget_s - RESERVE_S - (time.monotonic() - started)
        if remaining < 30:
            step.problems.append(f"not run: the {budget_s} s budget was spent")
            continue
        run_step(step, work, model_dir, args.device, timeout_s=remaining)
    summary = summarize(steps, args, build_s, time.monotonic() - started)
    (work / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    (args.outdir / f"gpu-check-{stamp}-summary.txt").write_text(summary + "\n", encoding="utf-8")
    archive = pack(work, args.outdir / f"gpu-check-{stamp}.tar.gz")
    say(summary)
    say(f"archive: {archive} ({archive.stat().st_size / 2**20:.1f} MiB)")
    failed = [step for step in steps if step.problems]
    if failed:
        say("GPU CHECK FAILED: " + "; ".join(f"{s.name}: {', '.join(s.problems)}" for s in failed))
        return 1
    say("GPU CHECK PASSED: every run finished, every request fair, no CUDA error")
    return 0


def say(text: str) -> None:
    print(text, flush=True)


def build_model(model: str) -> tuple[Path, float]:
    """The model folder, built first (an embedded model) so its build time is not a run's load time."""
    from benchbench.execution.bench import resolve_model

    t0 = time.perf_counter()
    path, _ = resolve_model(model)
    return path, time.perf_counter() - t0


def plan(device: str, model: str) -> list[Step]:
    """The runs, in order. On CPU (a rehearsal) placement is ``cpu`` and ``auto`` is left out: it needs CUDA."""
    dtype = "bfloat16" if device == "cuda" else "auto"
    common = ["--model", model, "--device", device, "--dtype", dtype, "--no-progress", "--request-timeout", "120",
              *(CPU_REHEARSAL if device == "cpu" else [])]
    placements = ["cuda", "auto"] if device == "cuda" else ["cpu"]
    steps = [
        Step(f"10x-image-{placement}", ["--scenario", "10x-image", *common, "--option", f"transformers.placement={placement}"])
        for placement in placements
    ]
    steps.append(Step("tiles-sweep", ["--scenario", "tiles-sweep", *common, "--option", f"transformers.placement={placements[0]}"]))
    steps.append(Step("serve", ["--scenario", "10x-image", *common, "--backend", "transformers", "--backend", "openai",
                                "--option", f"transformers.placement={placements[0]}",
                                "--option", "openai.dialect=transformers"], needs_server=True))  # fmt: skip
    steps.append(Step("serve-sweep", ["--scenario", "serve-sweep", *common, "--repeats", "2", "--backend", "transformers",
                                      "--backend", "openai", "--option", "transformers.max_batch_size=8",
                                      "--option", f"transformers.placement={placements[0]}",
                                      "--option", "openai.dialect=transformers"],
                      needs_server=True, continuous_batching=True, default=False))  # fmt: skip
    return steps


def run_step(step: Step, work: Path, model_dir: Path, device: str, timeout_s: float) -> None:
    step.run_dir = work / "runs" / step.name
    log_path = work / "logs" / f"{step.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"--- {step.name}")
    t0 = time.monotonic()
    try:
        if step.needs_server:
            with serve(model_dir, device, work, step.continuous_batching) as server:
                say(f"transformers serve healthy at {server.url} after {time.monotonic() - t0:.1f} s")
                step.argv += ["--url", server.url, "--option", f"openai.model={model_dir}"]
                code = run_bench(step, log_path, timeout_s - (time.monotonic() - t0))
        else:
            code = run_bench(step, log_path, timeout_s)
    except (ServerError, BenchError) as exc:
        step.problems.append(f"transformers serve: {exc}")
        code = None
    step.wall_s = time.monotonic() - t0
    if code is not None and code != 0:
        step.problems.append(f"benchbench exited {code} (log {log_path.name})")
    step.problems += check_run(step.run_dir, device) + cuda_errors(work / "logs", step.run_dir)
    say(f"{step.name}: {'ok' if not step.problems else 'PROBLEMS: ' + '; '.join(step.problems)} ({step.wall_s:.0f} s)")


def run_bench(step: Step, log_path: Path, timeout_s: float) -> int | None:
    argv = [sys.executable, "-m", "benchbench", "run", *step.argv, "--output-dir", str(step.run_dir)]
    with log_path.open("w", encoding="utf-8") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        try:
            done = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            step.problems.append(f"killed after {timeout_s:.0f} s (budget)")
            return None
        log.write(done.stdout)
    say(done.stdout.rstrip())
    return done.returncode


def serve(model_dir: Path, device: str, work: Path, continuous_batching: bool = False):
    """``transformers serve`` of the model on the same device and dtype, in its own process group;
    with continuous batching (paged attention) when asked and the installed version has it.

    Requests name the model exactly as the server was given it (5.17 refuses any other name). Its
    /v1/models scans the Hugging Face cache and fails where there is none (a fresh GPU machine), so
    the server gets an empty one of its own.
    """
    port = free_port()
    hub_cache = work / "hf-cache"
    hub_cache.mkdir(exist_ok=True)
    dtype = "bfloat16" if device == "cuda" else "float32"
    batching = ["--continuous-batching"] if continuous_batching and serve_has_continuous_batching() else []
    say(f"transformers serve batching: {'continuous' if batching else 'none (one request at a time)'}")
    spec = ServerSpec(
        name="transformers serve",
        argv=(sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir), "--host", "127.0.0.1",
              "--port", str(port), "--device", "cuda:0" if device == "cuda" else "cpu", "--dtype", dtype, *batching),
        env={"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_CACHE": str(hub_cache)},
        port=port, log_path=work / "logs" / "transformers-serve.log", startup_timeout_s=180,
    )  # fmt: skip
    return launch(spec)


def serve_has_continuous_batching() -> bool:
    """transformers 5.24's ``Serve`` takes ``continuous_batching``; older serve commands may not."""
    import inspect

    try:
        from transformers.cli.serve import Serve
    except ImportError:
        return False
    return "continuous_batching" in inspect.signature(Serve.__init__).parameters


def check_run(run_dir: Path, device: str) -> list[str]:
    """What is wrong in a finished run folder: a backend not ok, an unfair request, a GPU run without a GPU."""
    try:
        manifest, records = read_manifest(run_dir), read_records(run_dir)
    except BenchError as exc:
        return [str(exc)]
    problems = [f"backend {b.name} {b.status}: {b.error}" for b in manifest.backends if b.status != "ok"]
    unfair = [r for r in records if not r.fairness.ok]
    problems += [f"unfair {r.backend}/{r.request_id}: {'; '.join(r.fairness.violations)}" for r in unfair[:5]]
    if len(unfair) > 5:
        problems.append(f"{len(unfair) - 5} more unfair requests")
    if not records:
        problems.append("no records")
    if device == "cuda" and not manifest.environment.get("gpus"):
        problems.append(f"no GPU seen by NVML ({manifest.environment.get('nvml_error')})")
    return problems


def cuda_errors(logs: Path, run_dir: Path) -> list[str]:
    found = []
    for path in [*logs.glob("*.log"), *(run_dir / "logs").glob("*.log"), *run_dir.glob("*.error.log")]:
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.name}: {marker!r}" for marker in CUDA_ERRORS if marker in text]
    return found


def summarize(steps: list[Step], args: argparse.Namespace, build_s: float, total_s: float) -> str:
    import pandas as pd

    rows, notes = [], set()
    for step in steps:
        csv = step.run_dir / "summary.csv" if step.run_dir else None
        frame = pd.read_csv(csv) if csv and csv.is_file() else pd.DataFrame()
        resources = resource_figures(step.run_dir) if not frame.empty else {}
        for _, row in frame.iterrows():
            cells = {"run": step.name, "backend": row["backend"], "requests": row.get("requests"),
                     "unfair": row.get("unfair_requests")}  # fmt: skip
            cells.update({column: row.get(column) for column in SUMMARY_COLUMNS if column in frame.columns})
            figures = resources.get(row["backend"], {})
            cells.update({column: _number(figures.get(column)) for column in RESOURCE_COLUMNS})
            if figures.get("gpu_error"):
                notes.add(f"{step.name}: no GPU figures ({figures['gpu_error']})")
            rows.append(cells)
        if frame.empty:
            rows.append({"run": step.name, "backend": "(no summary)"})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
    verdicts = "\n".join(f"{s.name}: {'ok' if not s.problems else 'FAILED: ' + '; '.join(s.problems)}"
                         f"{f' ({s.wall_s:.0f} s)' if s.wall_s else ''}" for s in steps)  # fmt: skip
    head = (f"gpu_check {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} on {socket.gethostname()}: "
            f"device {args.device}, model {args.model} (built/loaded in {build_s:.1f} s), total {total_s:.0f} s")  # fmt: skip
    return "\n".join([head, table, *sorted(notes), verdicts])


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def resource_figures(run_dir: Path) -> dict[str, dict]:
    """Per backend: GPU memory (load and serve peaks), SM use, power, J per output token, host RSS."""
    from benchbench.results.resources import backend_figures

    manifest, records = read_manifest(run_dir), read_records(run_dir)
    return {o.name: backend_figures(o, [r for r in records if r.backend == o.name]) for o in manifest.backends}


def pack(work: Path, archive: Path) -> Path:
    """One archive of the work folder; the run folders' reports and raw records included."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(work, arcname=work.name)
    return archive


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
