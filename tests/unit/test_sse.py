"""The SSE decoder every streamed answer goes through: event framing as engines send it, chunk
boundaries anywhere, and the cap on one event."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchbench.backends.sse import EventTooLarge, SSEDecoder


def decode(*chunks: bytes, max_event_bytes: int = 1 << 20) -> list[str]:
    decoder = SSEDecoder(max_event_bytes)
    events = [data for chunk in chunks for data in decoder.feed(chunk)]
    last = decoder.close()
    return events + ([last] if last is not None else [])


def test_lightllm_events_without_a_space_after_data_are_read():
    assert decode(b'data:{"a": 1}\n\ndata:{"b": 2}\n\n') == ['{"a": 1}', '{"b": 2}']


def test_comments_and_other_fields_are_skipped():
    assert decode(b": ping\n\nevent: message\nid: 4\nretry: 10\ndata: x\n\n") == ["x"]


def test_crlf_and_cr_line_endings_frame_events_too():
    assert decode(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == ["a", "b", "c"]


def test_a_crlf_split_between_chunks_is_one_line_break():
    assert decode(b"data: a\r", b"\n\r", b"\ndata: b\n\n") == ["a", "b"]


def test_data_lines_of_one_event_are_joined_by_newlines():
    assert decode(b"data: first\ndata: second\n\n") == ["first\nsecond"]


def test_a_last_event_without_its_blank_line_is_still_delivered():
    assert decode(b"data: one\n\ndata: last\n") == ["one", "last"]


def test_a_five_megabyte_event_in_small_chunks_arrives_whole():
    payload = b"data: " + b"x" * (5 << 20) + b"\n\n"
    chunks = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
    assert decode(*chunks, max_event_bytes=8 << 20) == ["x" * (5 << 20)]


def test_an_event_past_the_cap_is_refused_before_it_ends():
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"x" * 600 + b"\n")
    with pytest.raises(EventTooLarge, match="passed 1000 bytes"):
        decoder.feed(b"data: " + b"y" * 600)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20), max_size=8), st.data())
def test_any_split_of_the_byte_stream_gives_the_same_events(texts, data):
    stream = b"".join(b"data: " + text.encode() + b"\n\n" for text in texts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert decode(*chunks) == texts
