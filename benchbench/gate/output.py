"""A gate result as a console table, Markdown for a CI job summary, and JUnit XML (a test case per rule)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tabulate import tabulate

from benchbench.gate.judge import GateResult, Status, Verdict
from benchbench.markdown import md_text

EXIT_MEANING = {0: "pass", 1: "regression", 2: "cannot judge"}
HEADERS = ["backend", "rule", "baseline", "run", "verdict", "reason"]
_MARK = {Status.PASS: "✅ pass", Status.REGRESSION: "❌ regression", Status.CANNOT_JUDGE: "⚠️ cannot judge"}


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _rows(result: GateResult, marks: dict[Status, str]) -> list[list[str]]:
    return [[v.backend, v.rule, _value(v.baseline), _value(v.current), marks[v.status], v.reason] for v in result.verdicts]


def headline(result: GateResult) -> str:
    """One line: the outcome, and which rules failed or could not be judged."""
    code = result.exit_code
    failed = [v for v in result.verdicts if v.status is not Status.PASS]
    if not result.verdicts:
        return "gate: cannot judge (exit 2): no rules were judged"
    if not failed:
        return f"gate: pass (exit 0): {len(result.verdicts)} rule(s) hold"
    worst = [v for v in failed if v.status is Status.REGRESSION] or failed
    named = "; ".join(f"{v.backend} {v.rule} -> {v.reason}" for v in worst)
    return f"gate: {EXIT_MEANING[code]} (exit {code}): {named}"


def console(result: GateResult, baseline_label: str, run_label: str) -> str:
    marks = {status: status.value.upper() for status in Status}
    lines = [f"gate: baseline {baseline_label} vs run {run_label}", f"decision: {result.method}"]
    if result.verdicts:
        lines.append(tabulate(_rows(result, marks), headers=HEADERS, tablefmt="simple", disable_numparse=True))
    lines += [f"note: {note}" for note in result.notes]
    lines.append(headline(result))
    return "\n".join(lines)


def markdown(result: GateResult, baseline_label: str, run_label: str) -> str:
    """A section for $GITHUB_STEP_SUMMARY (or any Markdown job summary)."""
    code = result.exit_code
    lines = [f"### benchbench gate: {EXIT_MEANING[code]} (exit {code})", "",
             f"Baseline {md_text(baseline_label)} vs run {md_text(run_label)}.", ""]
    if result.verdicts:
        rows = [[md_text(cell) for cell in row] for row in _rows(result, _MARK)]
        lines += [tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True), ""]
    lines.append(f"Decision: {md_text(result.method)}.")
    if result.notes:
        lines += ["", "Notes:", *(f"- {md_text(note)}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one testcase per backend and rule; a regression is a failure, cannot-judge an error."""
    counts = {status: sum(v.status is status for v in result.verdicts) for status in Status}
    suite = ET.Element("testsuite", name="benchbench gate", tests=str(len(result.verdicts)),
                       failures=str(counts[Status.REGRESSION]), errors=str(counts[Status.CANNOT_JUDGE]),
                       skipped="0", time="0")
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="decision", value=result.method)
    for index, note in enumerate(result.notes):
        ET.SubElement(properties, "property", name=f"note{index}", value=note)
    for verdict in result.verdicts:
        suite.append(_testcase(verdict))
    root = ET.Element("testsuites", name="benchbench", tests=suite.get("tests"), failures=suite.get("failures"),
                      errors=suite.get("errors"), time="0")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(verdict: Verdict) -> ET.Element:
    case = ET.Element("testcase", classname=f"benchbench.gate.judge.{verdict.backend}", name=verdict.rule, time="0")
    if verdict.status is Status.REGRESSION:
        ET.SubElement(case, "failure", message=verdict.reason, type="regression").text = verdict.reason
    elif verdict.status is Status.CANNOT_JUDGE:
        ET.SubElement(case, "error", message=verdict.reason, type="cannot judge").text = verdict.reason
    else:
        ET.SubElement(case, "system-out").text = verdict.reason
    return case
