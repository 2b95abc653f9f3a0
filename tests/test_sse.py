"""Unit tests of stockyard/core/sse.py, the one SSE parser: framing (LF, CRLF, CR, events cut
anywhere across network chunks) and fields (one space removed after the colon, multi-line
data, event names, comments)."""

from __future__ import annotations

import pytest

from stockyard.core.sse import (
    DONE,
    Event,
    EventSplitter,
    event_data,
    parse_event,
    split_events,
)
from stockyard.modules.cache import _stream_complete

STREAM = (
    b": hello\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: line one\ndata:line two\n: a comment inside\ndata:  indented\n\n"
    b"\n\n"  # extra blank lines: not an event
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
)
FIELDS = [
    Event(None, None),
    Event("message_start", b'{"a": 1}'),
    Event(None, b"line one\nline two\n indented"),
    Event(None, DONE),
]


def _all(splitter: EventSplitter, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    return out


def _framed(line_end: bytes) -> bytes:
    return STREAM.replace(b"\n", line_end)


def test_fields() -> None:
    assert [parse_event(raw) for raw in split_events(STREAM)] == FIELDS


def test_exactly_one_space_is_removed_after_the_colon() -> None:
    assert parse_event(b"data:x\n\n").data == b"x"
    assert parse_event(b"data: x\n\n").data == b"x"
    assert parse_event(b"data:  x\n\n").data == b" x"
    assert parse_event(b"data:\tx\n\n").data == b"\tx"  # only a space is removed
    assert parse_event(b"data: x \n\n").data == b"x "  # trailing space is data
    assert parse_event(b"event:  ping\ndata: 1\n\n") == Event(" ping", b"1")


def test_odd_lines() -> None:
    assert parse_event(b"data\n\n").data == b""  # a field without a colon has an empty value
    assert parse_event(b"data\ndata\n\n").data == b"\n"
    assert parse_event(b"data:\n\n").data == b""
    assert parse_event(b"event:\ndata: x\n\n") == Event(None, b"x")  # empty: the default type
    assert parse_event(b"dat: x\ndata : y\n\n") == Event(None, None)  # other field names
    assert parse_event(b": only a comment\n\n") == Event(None, None)
    assert event_data(b":data: x\n\n") is None  # a comment, even if it looks like data
    assert parse_event(b"data: a:b: c\n\n").data == b"a:b: c"  # only the first colon splits


def test_multi_line_data_is_joined_with_lf() -> None:
    raw = b'data: {\ndata:   "k": 1\ndata: }\n\n'
    assert parse_event(raw).data == b'{\n  "k": 1\n}'


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_line_ends(line_end: bytes) -> None:
    events = split_events(_framed(line_end))
    assert [parse_event(raw) for raw in events] == FIELDS
    assert all(b"\r" not in raw and raw.endswith(b"\n\n") for raw in events)


def test_mixed_line_ends() -> None:
    body = b"data: a\r\ndata: b\rdata: c\n\r\n" + b"data: d\r\r" + b"data: e\n\n"
    assert [parse_event(raw).data for raw in split_events(body)] == [b"a\nb\nc", b"d", b"e"]


def test_comment_events_are_kept_blank_ones_dropped() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b": keep-alive\n\n\n\n\r\n\r\n") == [b": keep-alive\n\n"]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_an_event_split_across_chunks_at_every_byte(line_end: bytes) -> None:
    body = _framed(line_end)
    whole = split_events(body)
    for cut in range(len(body) + 1):
        splitter = EventSplitter()
        events = _all(splitter, [body[:cut], body[cut:]])
        assert events == whole, f"cut at byte {cut}: {body[:cut]!r} | {body[cut:]!r}"
        assert splitter.rest() == b""


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"])
def test_an_event_split_at_every_pair_of_positions(line_end: bytes) -> None:
    body = _framed(line_end)
    whole = split_events(body)
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            chunks = [body[:first], body[first:second], body[second:]]
            assert _all(EventSplitter(), chunks) == whole, (first, second)


def test_byte_by_byte() -> None:
    body = _framed(b"\r\n")
    assert _all(EventSplitter(), [body[i : i + 1] for i in range(len(body))]) == split_events(body)


def test_a_cr_at_the_end_of_a_chunk_pairs_with_a_lf_in_the_next_only() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\ndata: b\r") == []  # CRLF: one line end, not two
    assert splitter.feed(b"\r") == [b"data: a\ndata: b\n\n"]  # CR CR: the event ends
    assert splitter.feed(b"\ndata: c\n\n") == [b"data: c\n\n"]  # that LF closes CRLF
    assert splitter.feed(b"data: d\r\r\n\n") == [b"data: d\n\n"]  # CR, CRLF, then LF


def test_rest_is_the_unfinished_event() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2") == [b"data: 1\n\n"]
    assert splitter.rest() == b"data: 2"
    assert splitter.rest() == b""
    assert split_events(b"data: 1\n\ndata: 2\n") == [b"data: 1\n\n", b"data: 2\n\n"]


def test_a_byte_order_mark_at_the_start_is_not_data() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"") == []
    assert splitter.feed(b"\xef\xbb\xbfdata: x\n\n") == [b"data: x\n\n"]
    assert splitter.feed(b"\xef\xbb\xbfdata: y\n\n") == [b"\xef\xbb\xbfdata: y\n\n"]  # only first


def test_the_cache_reads_streams_with_the_same_parser() -> None:
    chat = "/v1/chat/completions"
    ok = b'data: {"choices": []}\r\n\r\ndata:[DONE]\r\n\r\n'
    assert _stream_complete(ok, chat)
    assert _stream_complete(b'data: {"choices": []}\n\ndata: [DONE]\n', chat)
    assert not _stream_complete(b'data: {"choices": []}\n\n', chat)  # cut short
    failed = b'data: {"choices": []}\r\rdata:{"error": {"message": "x"}}\r\r'
    assert not _stream_complete(failed, chat)
    assert _stream_complete(b'data: {"data": []}\n\n', "/v1/embeddings")  # no [DONE] there
    mentions = b'data: {"choices": [{"delta": {"content": "\\"error\\":"}}]}\n\ndata: [DONE]\n\n'
    assert _stream_complete(mentions, chat)
