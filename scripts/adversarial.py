"""Hostile-user pass over the real CLI: damaged run folders, hostile paths and flags, signals mid-run.

    python scripts/adversarial.py [WORK_DIR]

Each case runs real processes on the embedded tiny model and is judged on three things: the exit
code and stderr (0, or 2 with exactly one ``error:`` line and no traceback; 130 for interrupts),
complete records lost (every complete record line present before must still be there, or in the
run a resume completed), and processes left (any process still carrying the run folder's
environment afterwards). Prints one line per case and the totals the README quotes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SCENARIO = """\
name: adversarial
images: {synthetic: {sizes: [[448, 448], [896, 448]]}}
prompt: {turns: [{user: "<image>\\nDescribe."}]}
requests: 6
warmup: 1
max_new_tokens: 6
backends:
  - {kind: transformers, options: {sleep_per_token_s: %s}}
"""


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbench", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def start(work: Path, name: str, sleep_s: float, *extra: str) -> tuple[subprocess.Popen, Path]:
    folder = work / name
    folder.mkdir(parents=True)
    (folder / "s.yaml").write_text(SCENARIO % sleep_s)
    run = folder / "run"
    process = subprocess.Popen([sys.executable, "-m", "benchbench", "run", "--scenario", str(folder / "s.yaml"),
                                "--output-dir", str(run), "--no-progress", *extra],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, run


def complete_lines(run: Path) -> set[bytes]:
    try:
        data = (run / "results.jsonl").read_bytes()
    except OSError:
        return set()
    return {line for line in data.splitlines(keepends=True) if line.endswith(b"\n") and line.startswith(b'{"schema')}


def leftovers(run: Path) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if str(run / "logs") in process.environ().get("BENCHBENCH_SERVER_GROUPS_FILE", "") and \
                    process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def clean_exit(result: subprocess.CompletedProcess | tuple[int, str], allowed: set[int]) -> str | None:
    """None when the command ended as promised: an allowed code, no traceback, exit 2 as one error line
    (or the gate's own "cannot judge" verdict)."""
    code, stderr = (result.returncode, result.stderr) if isinstance(result, subprocess.CompletedProcess) else result
    stdout = result.stdout if isinstance(result, subprocess.CompletedProcess) else ""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if "Traceback" in stderr:
        return "traceback"
    if code not in allowed:
        return f"exit {code}"
    if code == 2 and len(errors) != 1 and "gate: cannot judge (exit 2)" not in stdout:
        return f"exit 2 with {len(errors)} error lines"
    return None


def wait_measured(run: Path, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len([line for line in complete_lines(run) if b'"phase":"measure"' in line]) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"fewer than {count} measured records")


class Tally:
    def __init__(self) -> None:
        self.cases = self.failures = self.lost = self.left = 0

    def case(self, name: str, run: Path, before: set[bytes], problem: str | None, after_run: Path | None = None) -> None:
        lost = len(before - complete_lines(after_run or run))
        left = len(leftovers(run))
        self.cases += 1
        self.lost += lost
        self.left += left
        bad = problem or (f"{lost} record(s) lost" if lost else None) or (f"{left} process(es) left" if left else None)
        self.failures += bool(bad)
        print(f"{'FAIL' if bad else 'ok  '} {name}{': ' + bad if bad else ''}", flush=True)


def copy_of(finished: Path, work: Path, name: str) -> Path:
    target = work / "copies" / name
    shutil.copytree(finished, target)
    return target


def file_cases(tally: Tally, finished: Path, work: Path) -> None:
    baseline = work / "baseline.json"
    assert cli("baseline", "save", str(finished), "--to", str(baseline)).returncode == 0
    damages: dict[str, Callable[[Path], None]] = {}
    for label, junk in {"int": b"5\n", "null": b"null\n", "list": b"[1,2]\n", "non-utf8": b"\xff\xfe x\n",
                        "torn": b'{"schema_version": 2, "back'}.items():
        damages[f"results tail {label}"] = lambda run, junk=junk: (run / "results.jsonl").open("ab").write(junk)
        damages[f"results head {label}"] = lambda run, junk=junk: (run / "results.jsonl").write_bytes(
            junk + (run / "results.jsonl").read_bytes())
    for label, edit in {"[]": lambda m: [], "model {}": lambda m: {**m, "model": {}},
                        "gpus string": lambda m: {**m, "environment": {**m["environment"], "gpus": "x"}},
                        "settings {}": lambda m: {**m, "settings": {}}}.items():
        damages[f"manifest {label}"] = lambda run, edit=edit: (run / "manifest.json").write_text(
            json.dumps(edit(json.loads((run / "manifest.json").read_text()))))
    for label, make in {"folder": lambda p: p.mkdir(), "/dev/zero": lambda p: p.symlink_to("/dev/zero"),
                        "fifo": lambda p: os.mkfifo(p), "binary": lambda p: p.write_bytes(b"\0\xff" * 50)}.items():
        damages[f"manifest is a {label}"] = lambda run, make=make: (
            (run / "manifest.json").unlink(), make(run / "manifest.json"))
    for name, damage in damages.items():
        run = copy_of(finished, work, name.replace(" ", "_").replace("/", "_"))
        damage(run)
        before = complete_lines(run)
        for command in (["report", str(run)], ["gate", "--baseline", str(baseline), str(run)]):
            problem = clean_exit(cli(*command, timeout=120), {0, 1, 2} if command[0] == "gate" else {0, 2})
            tally.case(f"{command[0]}: {name}", run, before, problem)

    run = copy_of(finished, work, "gate-files")
    for label, make in {"folder": lambda p: p.mkdir(), "binary": lambda p: p.write_bytes(b"\x89PNG\0\xff" * 9)}.items():
        for flag in ("--baseline", "--rules"):
            given = work / f"given-{label}{flag}"
            make(given)
            tally.case(f"gate {flag} is a {label}", run, complete_lines(run), clean_exit(cli("gate", flag, str(given), str(run)), {2}))
    before = complete_lines(run)
    tally.case("baseline save --to RUN/results.jsonl", run, before,
               clean_exit(cli("baseline", "save", str(run), "--to", str(run / "results.jsonl")), {2}))


def input_cases(tally: Tally, finished: Path, work: Path) -> None:
    scenario = work / "input.yaml"
    scenario.write_text(SCENARIO % 0.0)
    mine = work / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    cases = {
        "ftp url": ["--backend", "openai", "--url", "ftp://127.0.0.1:21"],
        "port 99999": ["--backend", "openai", "--url", "http://127.0.0.1:99999"],
        "nothing listening": ["--backend", "openai", "--url", "http://127.0.0.1:9"],
        "--request-timeout inf": ["--request-timeout", "inf"],
        "--output-dir with the user's report.md": ["--output-dir", str(mine)],
    }
    for name, args in cases.items():
        out = work / f"out-{len(name)}"
        argv = ["run", "--scenario", str(scenario), "--no-progress", *args]
        if "--output-dir" not in args:
            argv += ["--output-dir", str(out)]
        problem = clean_exit(cli(*argv, timeout=300), {2})
        if (mine / "report.md").read_text() != "my notes":
            problem = "user's file overwritten"
        tally.case(name, out, set(), problem)
    run = copy_of(finished, work, "resume-flags")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["backends"][0]["status"] = "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    tally.case("--resume with --requests", run, complete_lines(run),
               clean_exit(cli("run", "--resume", str(run), "--requests", "50"), {2}))


def signal_cases(tally: Tally, work: Path) -> None:
    # SIGKILL of the parent mid-run, then resume at once
    process, run = start(work, "kill-parent", 0.05)
    wait_measured(run, 2)
    process.kill()
    process.communicate(timeout=60)
    before = complete_lines(run)
    tally.case("SIGKILL parent, immediate resume", run, before,
               clean_exit(cli("run", "--resume", str(run), "--no-progress"), {0}))
    # SIGKILL of the worker, then resume
    process, run = start(work, "kill-worker", 0.05)
    wait_measured(run, 2)
    worker = next(child for child in psutil.Process(process.pid).children() if "worker" in " ".join(child.cmdline()))
    worker.kill()
    process.communicate(timeout=120)
    before = complete_lines(run)
    tally.case("SIGKILL worker, resume", run, before, clean_exit(cli("run", "--resume", str(run), "--no-progress"), {0}))
    # SIGTERM then SIGINT while the report is written
    process, run = start(work, "term-in-report", 0.0)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads((run / "manifest.json").read_text()).get("report_status") == "pending":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    problem = clean_exit((process.returncode, stderr), {130}) or clean_exit(cli("report", str(run)), {0})
    tally.case("SIGTERM + Ctrl-C during the report, then report", run, complete_lines(run), problem)
    # four runs at once on one --output-dir
    folder = work / "four"
    folder.mkdir()
    (folder / "s.yaml").write_text(SCENARIO % 0.0)
    run = folder / "run"
    argv = [sys.executable, "-m", "benchbench", "run", "--scenario", str(folder / "s.yaml"), "--output-dir", str(run), "--no-progress"]
    runs = [subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    codes = sorted(r.wait(timeout=600) for r in runs)
    measured = len([line for line in complete_lines(run) if b'"phase":"measure"' in line])
    tally.case("four runs on one --output-dir", run, set(),
               None if codes == [0, 2, 2, 2] and measured == 6 else f"exit codes {codes}, {measured} measured records")


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bb-adversarial-"))
    process, finished = start(work, "finished", 0.0)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    tally = Tally()
    file_cases(tally, finished, work)
    input_cases(tally, finished, work)
    signal_cases(tally, work)
    print(f"cases tried: {tally.cases}, failed: {tally.failures}, complete records lost: {tally.lost}, "
          f"processes left: {tally.left}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
