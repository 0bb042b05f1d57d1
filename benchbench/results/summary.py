"""Per-backend aggregates of measured records (warmups never enter): the rows of summary.csv."""

from __future__ import annotations

import pandas as pd

from benchbench.results import metrics
from benchbench.results.records import RequestRecord

COUNTS = ("backend", "requests", "repeats", "unfair_requests")


def measured_by_backend(records: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    """Measured records per backend, backends in order of first appearance."""
    groups: dict[str, list[RequestRecord]] = {}
    for record in records:
        if record.phase == "measure":
            groups.setdefault(record.backend, []).append(record)
    return groups


def summarize(records: list[RequestRecord]) -> pd.DataFrame:
    """One row per backend: counts, then every published metric of the registry."""
    rows = []
    for backend, own in measured_by_backend(records).items():
        counts = {"backend": backend, "requests": len(own), "repeats": len({r.repeat for r in own}),
                  "unfair_requests": sum(not r.fairness.ok for r in own)}
        rows.append(counts | metrics.aggregate(own))
    return pd.DataFrame(rows, columns=[*COUNTS, *metrics.published_names()])
