"""Consistency metrics on hand-made token sequences and records."""

import pytest

from benchbench.results.consistency import compare_backends, compare_records, compare_sequences, repeat_stability
from benchbench.results.records import Fairness, RequestRecord


def test_identical_sequences_match_exactly():
    result = compare_sequences([1, 2, 3, 4], [1, 2, 3, 4])
    assert result.exact_match and result.agreement == 1.0
    assert result.first_divergence is None and result.edit_distance == 0.0


def test_one_substitution_diverges_at_its_position():
    result = compare_sequences([1, 2, 3, 4], [1, 2, 9, 4])
    assert not result.exact_match
    assert result.first_divergence == 2
    assert result.agreement == pytest.approx(3 / 4)
    assert result.edit_distance == pytest.approx(1 / 4)


def test_an_insertion_shifts_positions_but_costs_one_edit():
    result = compare_sequences([1, 2, 3, 4, 5], [1, 7, 2, 3, 4, 5])
    assert result.first_divergence == 1
    assert result.agreement == pytest.approx(1 / 6)  # positional: everything after the insertion is shifted
    assert result.edit_distance == pytest.approx(1 / 6)


def test_a_prefix_diverges_where_the_shorter_one_ends():
    result = compare_sequences([5, 6, 7], [5, 6, 7, 8, 9])
    assert result.first_divergence == 3
    assert result.agreement == pytest.approx(3 / 5)
    assert result.edit_distance == pytest.approx(2 / 5)
    assert (result.length_a, result.length_b) == (3, 5)


def test_two_empty_outputs_agree_and_one_empty_output_shares_nothing():
    assert compare_sequences([], []).exact_match
    result = compare_sequences([], [1, 2])
    assert result.first_divergence == 0 and result.agreement == 0.0 and result.edit_distance == 1.0


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("kitten", "sitting", 3), ("flaw", "lawn", 2), ("", "abc", 3), ("abc", "abc", 0), ("abcdef", "azced", 3)],
)
def test_edit_distance_is_textbook_levenshtein_over_characters_and_over_token_ids(a, b, distance):
    longest = max(len(a), len(b))
    assert compare_sequences(a, b).edit_distance * longest == pytest.approx(distance)
    # The same edits over token ids as large as a real vocabulary's (Qwen2: 151643 is <|endoftext|>).
    ids = {char: 151643 + ord(char) for char in a + b}
    assert compare_sequences([ids[c] for c in b], [ids[c] for c in a]).edit_distance * longest == pytest.approx(distance)


def _record(backend, request_id, text, token_ids=None, repeat=0, phase="measure"):
    return RequestRecord(
        backend=backend, backend_kind="transformers", phase=phase, request_id=request_id, repeat=repeat,
        started_at=0.0, max_tiles=6, tiles_planned=1, tiles=1, image_tokens_planned=256, image_tokens=256,
        input_tokens=300, max_new_tokens=4, output_tokens=4, preprocess_s=0.1, ttft_s=0.1, decode_s=0.1,
        e2e_s=0.3, decode_tok_s=30.0, preprocess_in_ttft=False, text=text, token_ids=token_ids,
        fairness=Fairness(ok=True),
    )


def test_records_compare_over_tokens_when_both_have_ids():
    basis, result = compare_records(_record("a", "r0", "same text", [1, 2, 3]), _record("b", "r0", "same text", [1, 2, 4]))
    assert basis == "tokens" and result.first_divergence == 2


def test_records_compare_over_characters_when_one_lacks_ids():
    basis, result = compare_records(_record("a", "r0", "hello", [1, 2]), _record("b", "r0", "help", None))
    assert basis == "characters" and result.first_divergence == 3


def test_backends_are_paired_by_request_at_their_first_repeat_and_warmups_are_ignored():
    records = [
        _record("a", "w0", "x", [9], phase="warmup"), _record("b", "w0", "y", [8], phase="warmup"),
        _record("a", "r0", "x", [1, 2], repeat=0), _record("a", "r0", "x", [1, 3], repeat=1),
        _record("b", "r0", "x", [1, 2], repeat=1), _record("b", "r1", "x", [4]),
    ]
    pairs = compare_backends(records, "a", "b")
    assert [(p.request_id, p.repeat, p.comparison.exact_match) for p in pairs] == [("r0", 0, True)]


def test_repeat_stability_compares_later_repeats_with_the_first():
    records = [_record("a", "r0", "x", [1, 2], repeat=0), _record("a", "r0", "x", [1, 3], repeat=1),
               _record("a", "r0", "x", [1, 2], repeat=2)]
    stability = repeat_stability(records, "a")
    assert [(s.repeat, s.comparison.exact_match) for s in stability] == [(1, False), (2, True)]
