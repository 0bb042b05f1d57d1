"""Did two backends say the same thing? Per-request output comparisons, over token ids when both
records carry them, else over text characters (the ``basis`` says which)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz.distance import Levenshtein

from benchbench.results.records import RequestRecord

Basis = Literal["tokens", "characters"]


@dataclass(frozen=True)
class SequenceComparison:
    """How far two output sequences agree.

    ``agreement`` is the share of positions (up to the longer length) holding the same item;
    ``first_divergence`` the first position that differs (None when identical);
    ``edit_distance`` Levenshtein distance over the longer length (0 identical, 1 nothing shared).
    """

    exact_match: bool
    agreement: float
    first_divergence: int | None
    edit_distance: float
    length_a: int
    length_b: int


@dataclass(frozen=True)
class RequestConsistency:
    """One request answered by two backends."""

    request_id: str
    repeat: int
    basis: Basis
    comparison: SequenceComparison
    a: RequestRecord
    b: RequestRecord


def compare_sequences(a: Sequence, b: Sequence) -> SequenceComparison:
    longest = max(len(a), len(b))
    prefix = common_prefix(a, b)
    if longest == 0:
        return SequenceComparison(True, 1.0, None, 0.0, 0, 0)
    same = sum(1 for x, y in zip(a, b) if x == y)
    identical = prefix == longest
    return SequenceComparison(
        exact_match=identical,
        agreement=same / longest,
        first_divergence=None if identical else prefix,
        edit_distance=Levenshtein.distance(a, b) / longest,
        length_a=len(a),
        length_b=len(b),
    )


def common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the longest shared prefix."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def compare_records(a: RequestRecord, b: RequestRecord) -> tuple[Basis, SequenceComparison]:
    if a.token_ids is not None and b.token_ids is not None:
        return "tokens", compare_sequences(a.token_ids, b.token_ids)
    return "characters", compare_sequences(a.text, b.text)


def compare_backends(records: Sequence[RequestRecord], backend_a: str, backend_b: str) -> list[RequestConsistency]:
    """Measured requests both backends answered, each compared at the first repeat both have."""
    first_a, first_b = _first_answers(records, backend_a), _first_answers(records, backend_b)
    results = []
    for key in sorted(first_a.keys() & first_b.keys()):
        a, b = first_a[key], first_b[key]
        basis, comparison = compare_records(a, b)
        results.append(RequestConsistency(key, min(a.repeat, b.repeat), basis, comparison, a, b))
    return results


def repeat_stability(records: Sequence[RequestRecord], backend: str) -> list[RequestConsistency]:
    """Each later repeat of a request compared with the backend's first answer to it (greedy: should match)."""
    first = _first_answers(records, backend)
    results = []
    for record in records:
        earliest = first.get(record.request_id)
        if record.backend == backend and record.phase == "measure" and earliest is not None and record is not earliest:
            basis, comparison = compare_records(earliest, record)
            results.append(RequestConsistency(record.request_id, record.repeat, basis, comparison, earliest, record))
    return results


def _first_answers(records: Sequence[RequestRecord], backend: str) -> dict[str, RequestRecord]:
    first: dict[str, RequestRecord] = {}
    for record in records:
        if record.backend == backend and record.phase == "measure":
            known = first.get(record.request_id)
            if known is None or record.repeat < known.repeat:
                first[record.request_id] = record
    return first
