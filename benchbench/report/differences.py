"""What differs between two compared backends: the configuration behind a speed ratio or an output divergence."""

from __future__ import annotations

from typing import Any

from benchbench.report.inputs import BackendView
from benchbench.results.consistency import RequestConsistency

# Load facts that are bulky or echo the options; the options and scalar facts say what differs.
_SKIPPED_FACTS = {"device_map"}


def configuration(view: BackendView) -> dict[str, Any]:
    """A backend's kind, options and scalar load facts, as one flat mapping."""
    outcome = view.outcome
    facts = {key: value for key, value in outcome.load_info.items()
             if key not in _SKIPPED_FACTS and (value is None or isinstance(value, (str, int, float, bool)))}
    return {"kind": outcome.kind, "model": view.run.manifest.model.get("path"), **facts, **outcome.options}


def differences(a: BackendView, b: BackendView) -> list[str]:
    """``key a-value → b-value`` for each setting in which the two backends differ."""
    first, second = configuration(a), configuration(b)
    return [f"{key} {first.get(key)} → {second.get(key)}" for key in sorted(first.keys() | second.keys())
            if first.get(key) != second.get(key)]


def describe_differences(a: BackendView, b: BackendView) -> str:
    found = differences(a, b)
    if not found:
        return f"{b.label} and {a.label} have the same configuration"
    return f"{b.label} differs from {a.label} in: " + "; ".join(found) + "; everything else is the same"


def explain_consistency(a: BackendView, b: BackendView, results: list[RequestConsistency]) -> str:
    """One sentence on a pair's agreement and where to look for the cause of a divergence."""
    diverging = sum(1 for result in results if not result.comparison.exact_match)
    found = differences(a, b)
    cause = ("; ".join(found)) if found else "nothing in their configuration"
    if not diverging:
        return (f"{a.label} and {b.label} gave identical outputs on all {len(results)} requests: what differs between "
                f"them ({cause}) does not change greedy decoding on this workload")
    where = ("the first place to look is what differs between them: " + cause
             + " (a different kernel, dtype or preprocessing changes logits slightly, and greedy decoding flips "
               "where two tokens are nearly tied)") if found else (
        "their configurations are the same, so the engine itself is not deterministic between runs")
    return f"{a.label} and {b.label} diverge on {diverging} of {len(results)} requests; {where}"
