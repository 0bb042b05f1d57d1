"""Inter-token times are per token only where the stream says how many tokens each chunk carried:
a generic server's multi-token chunks yield inter-chunk times and leave per-token ones unknown."""

import json

import pytest

from benchbench.backends.base import BackendContext, parse_options
from benchbench.backends.openai.backend import OpenAIBackend, PreparedChat
from benchbench.config.scenario import load_scenario
from benchbench.execution.measure import Measurement
from benchbench.workload.build import build_workload

MS = 1_000_000


def standin_stream(tokens: int = 16, per_chunk: int = 4, token_ms: int = 10) -> list[tuple[int, str]]:
    """(arrival ns, data) of the events StandInStreamServer sends (tests/integration/standin_stream.py):
    ``per_chunk`` tokens per event with cumulative usage, a chunk every ``per_chunk * token_ms``."""
    events, sent, at = [], 0, 100 * MS
    while sent < tokens:
        text = "".join(f" t{i}" for i in range(sent, sent + per_chunk))
        sent += per_chunk
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}],
                 "usage": {"completion_tokens": sent}}
        events.append((at, json.dumps(chunk)))
        at += per_chunk * token_ms * MS
    at -= per_chunk * token_ms * MS
    finish = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}
    return events + [(at, json.dumps(finish)), (at, json.dumps(usage)), (at, "[DONE]")]


def record_of(dialect: str, events: list[tuple[int, str]], tmp_path):
    """The record the runner makes of this stream, received by the OpenAI backend in ``dialect``."""
    context = BackendContext("server", tmp_path, "auto", None, tmp_path, 0)
    backend = OpenAIBackend(parse_options(OpenAIBackend, {"url": "http://127.0.0.1:9", "dialect": dialect}, "server"), context)
    prepared = PreparedChat({}, b"", None, 256)
    generation, marks = backend.generation_from_events(prepared, events)
    request = build_workload(load_scenario("10x-image").with_overrides(requests=1, warmup=0, max_new_tokens=16)).measured[0]
    end_ns = events[-1][0] + MS
    return Measurement("server", "openai", backend.capabilities, request, 0, 0.0, 0, 0, end_ns, tuple(marks), generation).record()


def test_a_generic_servers_four_token_chunks_give_inter_chunk_times_and_no_per_token_ones(tmp_path):
    record = record_of("generic", standin_stream(per_chunk=4, token_ms=10), tmp_path)
    assert record.output_tokens == 16 and record.details["streamed_tokens"] == 4
    assert record.inter_token_s is None and record.decode_tok_s is None
    assert record.inter_chunk_s == pytest.approx([0.04, 0.04, 0.04])
    assert [note.kind for note in record.notes] == ["inter_token_chunks"]
    assert record.ttft_s == pytest.approx(0.1) and record.decode_s == pytest.approx(0.12)


def test_a_usage_per_chunk_dialect_still_spreads_each_gap_over_the_chunks_tokens(tmp_path):
    record = record_of("vllm", standin_stream(per_chunk=4, token_ms=10), tmp_path)
    assert record.details["stream_count_source"] == "usage deltas" and record.notes == []
    assert record.inter_token_s == pytest.approx([0.01] * 12) and record.inter_chunk_s is None
    assert record.decode_tok_s == pytest.approx(12 / 0.12)


def test_one_token_chunks_that_add_up_keep_per_token_times_on_a_generic_server(tmp_path):
    record = record_of("generic", standin_stream(tokens=4, per_chunk=1, token_ms=10), tmp_path)
    assert record.inter_token_s == pytest.approx([0.01] * 3) and record.inter_chunk_s is None and record.notes == []
