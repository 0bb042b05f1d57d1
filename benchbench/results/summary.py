"""Aggregates of measured records (warmups never enter): the rows of summary.csv. A serial run has
one row per backend; a run with load points one row per backend and point (``point`` column),
since pooling a point of 1 request in flight with one of 16 would describe neither."""

from __future__ import annotations

import pandas as pd

from benchbench.results import metrics
from benchbench.results.load import by_point
from benchbench.results.records import RequestRecord

COUNTS = ("backend", "requests", "repeats", "unfair_requests")
POINT_COUNTS = ("backend", "point", "requests", "repeats", "unfair_requests")


def measured_by_backend(records: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    """Measured records per backend, backends in order of first appearance."""
    groups: dict[str, list[RequestRecord]] = {}
    for record in records:
        if record.phase == "measure":
            groups.setdefault(record.backend, []).append(record)
    return groups


def summarize(records: list[RequestRecord]) -> pd.DataFrame:
    """One row per backend (per backend and load point under load): counts, then every published
    metric of the registry."""
    groups = measured_by_backend(records)
    if any(r.load is not None for own in groups.values() for r in own):
        rows = [{"backend": backend, "point": point} | _row(group)
                for backend, own in groups.items() for point, group in by_point(own).items()]
        return pd.DataFrame(rows, columns=[*POINT_COUNTS, *metrics.published_names(load=True)])
    rows = [{"backend": backend} | _row(own) for backend, own in groups.items()]
    return pd.DataFrame(rows, columns=[*COUNTS, *metrics.published_names()])


def _row(records: list[RequestRecord]) -> dict[str, float | int | None]:
    counts = {"requests": len(records), "repeats": len({r.repeat for r in records}),
              "unfair_requests": sum(not r.fairness.ok for r in records)}
    return counts | metrics.aggregate(records)
