"""The record schema: typed notes reach the report's checks; older records upgrade, newer ones are refused."""

import json

import pytest

from benchbench.backends.openai.backend import _stream_notes
from benchbench.backends.openai.responses import ChatResult
from benchbench.errors import BenchError
from benchbench.report.checks import problems
from benchbench.report.inputs import load_input
from benchbench.report.performance import latency_section
from benchbench.results.records import (
    SCHEMA_VERSION,
    BackendOutcome,
    Fairness,
    Manifest,
    RecordNote,
    RequestRecord,
    read_records,
    to_dataframe,
    write_manifest,
)

NOTE = RecordNote(kind="inter_token_chunks", message="chunks accounted for 28 of 32 tokens")


def record(index: int, notes: list[RecordNote], schema_version: int = SCHEMA_VERSION, **timings) -> RequestRecord:
    return RequestRecord(
        schema_version=schema_version, backend="server", backend_kind="openai", phase="measure",
        request_id=f"r{index}", repeat=0, started_at=float(index), max_tiles=6, tiles_planned=1, tiles=1,
        image_tokens_planned=256, image_tokens=256, input_tokens=300, max_new_tokens=32, output_tokens=32,
        preprocess_s=0.01, ttft_s=0.1, decode_s=0.5, e2e_s=0.7, preprocess_in_ttft=False,
        text="x", fairness=Fairness(ok=True), notes=notes, **{"decode_tok_s": 60.0, **timings},
    )


def write_run(run_dir, lines: list[str]):
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    write_manifest(run_dir, Manifest(
        created_at="now", command=["test"], scenario={"name": "s"}, scenario_hash="s", workload_hash="w", repeats=1,
        seed=0, model={"path": "m"}, settings={"model_path": "m", "dtype": "float32"}, environment={},
        backends=[BackendOutcome(name="server", kind="openai", options={}, status="ok")]))
    return run_dir


def test_a_stream_whose_chunks_fall_short_of_the_output_gets_a_typed_note():
    short = ChatResult("x", 32, "usage", 10, None, "length", None, streamed_tokens=28, stream_count_source="one per content chunk")
    whole = ChatResult("x", 32, "usage", 10, None, "length", None, streamed_tokens=32, stream_count_source="one per content chunk")
    assert [note.kind for note in _stream_notes(short)] == ["inter_token_chunks"]
    assert "28 of 32" in _stream_notes(short)[0].message and _stream_notes(whole) == []


def test_the_checks_list_each_kind_of_note_with_its_count_and_examples(tmp_path):
    run = write_run(tmp_path / "run", [record(i, [NOTE] if i < 3 else []).model_dump_json() for i in range(5)])
    notes = [block for block in problems(load_input([run])) if getattr(block, "label", "") == "Backend note"]
    assert len(notes) == 1 and notes[0].tone == "warn"
    assert notes[0].text == ("server: 3 measured request(s) noted inter_token_chunks: chunks accounted for 28 of 32 "
                             "tokens (e.g. r0#0, r1#0, r2#0)")


def test_a_schema_1_record_has_its_inter_token_warning_turned_into_a_note(tmp_path):
    old = json.loads(record(0, [], schema_version=1).model_dump_json(exclude={"notes"}))
    old["details"] = {"inter_token_warning": NOTE.message, "streamed_tokens": 28}
    run = write_run(tmp_path / "run", [json.dumps(old)])
    (loaded,) = read_records(run)
    assert loaded.notes == [NOTE] and loaded.details == {"streamed_tokens": 28}


def test_a_schema_2_record_loads_with_no_inter_chunk_times(tmp_path):
    old = json.loads(record(0, [NOTE], schema_version=2, inter_token_s=[0.04]).model_dump_json(exclude={"inter_chunk_s"}))
    (loaded,) = read_records(write_run(tmp_path / "run", [json.dumps(old)]))
    assert (loaded.schema_version, loaded.inter_token_s, loaded.inter_chunk_s, loaded.notes) == (2, [0.04], None, [NOTE])


def latency_table(run, out_dir):
    (table,) = [block for block in latency_section(load_input([run]), out_dir).blocks if block.kind == "table"]
    return dict(zip(table.headers, (cell.text for cell in table.rows[0])))


def test_the_latency_table_shows_inter_chunk_times_only_where_a_stream_has_them(tmp_path):
    chunked = record(0, [NOTE], inter_chunk_s=[0.04, 0.02], decode_tok_s=None)
    table = latency_table(write_run(tmp_path / "chunked", [chunked.model_dump_json()]), tmp_path)
    assert table["inter-chunk p50 / p99 (ms)"] == "30 / 39.8" and table["inter-token p50 / p99 (ms)"] == "not measured"
    per_token = record(0, [], inter_token_s=[0.01])
    assert "inter-chunk p50 / p99 (ms)" not in latency_table(write_run(tmp_path / "per-token", [per_token.model_dump_json()]), tmp_path)


def test_notes_stay_out_of_the_flat_dataframe():
    frame = to_dataframe([record(0, [NOTE])])
    assert "notes" not in frame.columns and frame.loc[0, "e2e_s"] == 0.7


def test_records_from_a_newer_benchbench_are_refused_with_the_fix(tmp_path):
    newer = json.loads(record(0, []).model_dump_json()) | {"schema_version": SCHEMA_VERSION + 1}
    run = write_run(tmp_path / "run", [json.dumps(newer)])
    with pytest.raises(BenchError, match="newer than this benchbench .*upgrade benchbench"):
        read_records(run)
