"""Was the comparison fair, and did everything run? The problems list (shown first) and the fairness table."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from benchbench.results.records import BackendOutcome, RecordNote, RequestRecord
from benchbench.report.document import Block, Cell, Code, Note, Section, Table, cells
from benchbench.report.inputs import BackendView, ReportInput
from benchbench.report.outputs import backend_pairs

STATUS_WORDS = {"failed": "FAILED", "interrupted": "INTERRUPTED", "running": "DID NOT FINISH", "pending": "DID NOT RUN"}
EXAMPLE_IDS = 5


def fact(outcome: BackendOutcome, key: str) -> Any:
    """A load fact (or, failing that, an option): top-level load_info, its engine_config, then options."""
    for source in (outcome.load_info, outcome.load_info.get("engine_config") or {}, outcome.options):
        if isinstance(source, dict) and source.get(key) is not None:
            return source[key]
    return None


def problems(data: ReportInput) -> list[Block]:
    """Everything a reader must see before any number: failures, violations, stand-ins, mismatches."""
    blocks: list[Block] = []
    for view in data.backends:
        word = STATUS_WORDS.get(view.outcome.status)
        if word:
            blocks.append(Note(f"{view.label}: {view.outcome.error or 'no error recorded'}", "bad", f"Backend {word}"))
            if view.outcome.log_tail:
                blocks.append(Code("\n".join(view.outcome.log_tail), f"last lines of {view.label}'s error log"))
    for view in data.backends:
        blocks += _violation_notes(view, data.measured(view.key))
    hashes = {run.manifest.workload_hash for run in data.runs}
    if len(hashes) > 1:
        blocks.append(Note("the runs compared here ran different workloads (allowed by --allow-different-workloads); "
                           "their numbers are not like for like", "bad", "Different workloads"))
    for view in data.backends:
        if view.stand_in:
            blocks.append(Note(f"{view.label} is a stand-in server, not an engine: its numbers measure the stand-in",
                               "warn", "Stand-in"))
    blocks += _mismatch_notes(data)
    if not blocks:
        count = len(data.backends)
        blocks.append(Note(f"all {count} backend(s) finished, and every measured request produced the planned tokens, "
                           "tiles and image tokens (where the engine reports them)", "good", "Fair run"))
    blocks += _disagreement_notes(data)
    for view in data.backends:
        blocks += _record_notes(view, data.measured(view.key))
    for view in data.backends:
        unchecked = sorted({item for r in data.measured(view.key) for item in r.fairness.unchecked})
        if unchecked:
            blocks.append(Note(f"{view.label}: {'; '.join(unchecked)}", "muted", "Not verifiable"))
    return blocks


def _violation_notes(view: BackendView, measured: list[RequestRecord]) -> list[Block]:
    by_message: dict[str, list[str]] = defaultdict(list)
    for record in measured:
        for violation in record.fairness.violations:
            by_message[_message_kind(violation)].append(f"{record.request_id}#{record.repeat}")
    return [Note(f"{view.label}: {len(where)} measured request(s) with {message} (e.g. {_examples(where)})",
                 "bad", "Fairness violation") for message, where in by_message.items()]


def _examples(where: list[str]) -> str:
    return ", ".join(where[:EXAMPLE_IDS]) + (" ..." if len(where) > EXAMPLE_IDS else "")


def _record_notes(view: BackendView, measured: list[RequestRecord]) -> list[Block]:
    """The backend's typed notes on its requests, one line per kind with the first message and examples."""
    by_kind: dict[str, list[tuple[RequestRecord, RecordNote]]] = defaultdict(list)
    for record in measured:
        for note in record.notes:
            by_kind[note.kind].append((record, note))
    blocks: list[Block] = []
    for kind, hits in by_kind.items():
        first = hits[0][1]
        where = [f"{record.request_id}#{record.repeat}" for record, _ in hits]
        blocks.append(Note(f"{view.label}: {len(hits)} measured request(s) noted {kind}: {first.message} "
                           f"(e.g. {_examples(where)})", "warn" if first.severity == "warn" else "muted", "Backend note"))
    return blocks


def _message_kind(violation: str) -> str:
    """'output_tokens 12 != max_new_tokens 32' → 'output_tokens != max_new_tokens', so counts group."""
    return " ".join(word for word in violation.split() if not word.lstrip("-").isdigit())


def _mismatch_notes(data: ReportInput) -> list[Block]:
    notes: list[Block] = []
    dtypes = {view.label: fact(view.outcome, "dtype") for view in data.backends if view.outcome.load_info}
    if len({str(d) for d in dtypes.values()}) > 1:
        listed = ", ".join(f"{label}: {dtype}" for label, dtype in dtypes.items())
        notes.append(Note(f"backends ran in different dtypes ({listed})", "warn", "Different dtypes"))
    weights = {run.manifest.model.get("weights", {}).get("sha256") for run in data.runs}
    if len(weights) > 1:
        notes.append(Note("the runs used different model weights (see Environment)", "warn", "Different models"))
    return notes


def fairness_section(data: ReportInput) -> Section:
    headers = ["backend", "status", "warmups excluded", "measured", "tokens requested / produced",
               "tiles planned / used", "image tokens planned / used", "preprocessing inside TTFT", "dtype",
               "placement", "violations", "not checked"]
    rows = []
    for view in data.backends:
        measured = data.measured(view.key)
        warmups = sum(1 for r in data.records if r.backend == view.key and r.phase == "warmup")
        violations = sum(1 for r in measured if not r.fairness.ok)
        unchecked = sorted({item for r in measured for item in r.fairness.unchecked})
        rows.append(cells(
            view.label,
            Cell(view.outcome.status, "good" if view.outcome.status == "ok" else "bad"),
            warmups,
            len(measured),
            _planned_vs_used([r.max_new_tokens for r in measured], [r.output_tokens for r in measured]),
            _planned_vs_used([r.tiles_planned for r in measured], [r.tiles for r in measured]),
            _planned_vs_used([r.image_tokens_planned for r in measured], [r.image_tokens for r in measured]),
            _inside_ttft(view, measured),
            fact(view.outcome, "dtype") or "not reported",
            placement(view.outcome),
            Cell(str(violations), "bad" if violations else "good") if measured else Cell("n/a", "muted"),
            Cell("; ".join(unchecked) or "nothing", "warn" if unchecked else "muted"),
        ))
    caption = ("Warmup requests are recorded but excluded from every number. Sums over measured requests; "
               "'used' is what the engine itself reported.")
    return Section("fairness", "Fairness", [Table(headers, rows, caption)])


def _planned_vs_used(planned: list[int], used: list[int | None]) -> Cell:
    if not planned:
        return Cell("no requests", "muted")
    if any(value is None for value in used):
        return Cell(f"{sum(planned):,} / not reported", "warn")
    total = sum(used)  # type: ignore[arg-type]
    return Cell(f"{sum(planned):,} / {total:,}", "" if planned == used else "bad")


def _inside_ttft(view: BackendView, measured: list[RequestRecord]) -> Cell:
    flags = Counter(r.preprocess_in_ttft for r in measured)
    if not flags:
        inside = view.outcome.capabilities.get("preprocesses_inside_engine")
        return Cell("n/a" if inside is None else "yes" if inside else "no", "muted")
    return Cell("yes (TTFT includes it)" if flags[True] else "no (timed separately)")


def placement(outcome: BackendOutcome) -> str:
    """Where the model ran: device or split map, tensor parallelism, engine."""
    parts = []
    for key in ("engine", "placement"):
        if fact(outcome, key):
            parts.append(str(fact(outcome, key)))
    device_map = outcome.load_info.get("device_map") or {}
    if device_map:
        devices = sorted({str(device) for device in device_map.values()})
        parts.append(f"device_map: {len(device_map)} modules on {', '.join(devices)}")
    tp = fact(outcome, "tp")
    if tp:
        parts.append(f"tp={tp}")
    return ", ".join(parts) or "not reported"


def _disagreement_notes(data: ReportInput) -> list[Block]:
    """Pairs of backends whose outputs differ: greedy decoding of one model should agree."""
    notes = []
    for (a, b), results in backend_pairs(data).items():
        differing = [r for r in results if not r.comparison.exact_match]
        if differing:
            first = min(differing, key=lambda r: r.comparison.first_divergence or 0)
            notes.append(Note(
                f"{data.label(a)} vs {data.label(b)}: {len(results) - len(differing)} of {len(results)} requests "
                f"identical; earliest divergence at {first.basis[:-1]} {first.comparison.first_divergence} of "
                f"{first.request_id} (see Output consistency)", "warn", "Outputs differ"))
    return notes
