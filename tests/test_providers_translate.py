"""Unit tests of stockyard/providers/translate.py: the helpers the Anthropic and Gemini
adapters share, and the event-by-event stream translation of the translating exchange."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stockyard.core.sse import Event, parse_event
from stockyard.core.usage import Usage
from stockyard.exceptions import UpstreamFailure
from stockyard.providers.anthropic import AnthropicStream
from stockyard.providers.translate import (
    ChunkWriter,
    TranslatedEvents,
    content_parts,
    max_tokens_of,
    openai_usage,
    parse_data_url,
    stop_sequences,
    tool_arguments,
    tool_choice_of,
)
from stockyard.providers.transport import StreamReader


def test_parse_data_url() -> None:
    assert parse_data_url("data:image/png;base64,AAAA") == ("image/png", "AAAA")
    assert parse_data_url("data:;base64,AA") == ("application/octet-stream", "AA")
    assert parse_data_url("data:text/plain,hello") is None  # not base64
    assert parse_data_url("https://x/y.png") is None


def test_content_parts() -> None:
    assert content_parts("hi", "m") == [{"type": "text", "text": "hi"}]
    assert content_parts("", "m") == [] and content_parts(None, "m") == []
    parts = content_parts(
        [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": ""},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            {"type": "image_url", "image_url": "https://h/i.webp"},
        ],
        "m",
    )
    assert parts == [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "mime": "image/jpeg", "data": "/9j/"},
        {"type": "image", "url": "https://h/i.webp"},
    ]
    with pytest.raises(UpstreamFailure, match="uploaded file ids"):
        content_parts([{"type": "file", "file": {"file_id": "file-1"}}], "m")
    with pytest.raises(UpstreamFailure, match="http"):
        content_parts([{"type": "image_url", "image_url": {"url": "ftp://x"}}], "m")


def test_small_readers() -> None:
    assert stop_sequences("x") == ["x"] and stop_sequences(["a", "", 3]) == ["a"]
    assert stop_sequences(None) == []
    assert max_tokens_of({"max_tokens": 5, "max_completion_tokens": 7}) == 7
    assert max_tokens_of({"max_tokens": True}) is None
    assert tool_arguments('{"a": 1}', "m") == {"a": 1} and tool_arguments("", "m") == {}
    with pytest.raises(UpstreamFailure, match="JSON object"):
        tool_arguments("[1]", "m")
    assert tool_choice_of({}) is None and tool_choice_of({"tool_choice": "required"}) == "required"
    assert tool_choice_of({"tool_choice": {"type": "function", "function": {"name": "f"}}}) == (
        "function",
        "f",
    )
    with pytest.raises(UpstreamFailure):
        tool_choice_of({"tool_choice": "sometimes"})


def test_usage_feeds_the_context_like_openai() -> None:
    usage = Usage()
    usage.update_from_openai(openai_usage(100, 30, cached=60, reasoning=10))
    assert (usage.prompt_tokens, usage.completion_tokens) == (100, 30)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (60, 10)


def test_chunk_writer() -> None:
    writer = ChunkWriter("id1", "m")
    chunk = json.loads(writer.chunk({"content": "x"}, index=1)[6:])
    assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == "id1"
    assert chunk["choices"] == [
        {"index": 1, "delta": {"content": "x"}, "finish_reason": None, "logprobs": None}
    ]
    assert writer.done() == b"data: [DONE]\n\n"


def test_sse_event() -> None:
    assert parse_event(b'event: ping\ndata: {"type": "ping"}\n\n') == Event(
        "ping", b'{"type": "ping"}'
    )
    assert parse_event(b"data:a\ndata: b\n\n") == (None, b"a\nb")
    assert parse_event(b": comment\n\n") == (None, None)


class _Ctx:
    body: dict[str, Any] = {}


def _reader() -> tuple[StreamReader, AnthropicStream, list[Usage]]:
    """What the transport runs for one Anthropic stream, and the usage it reports."""
    reported: list[Usage] = []
    translator = AnthropicStream(_Ctx(), "m", "claude", reported.append)  # type: ignore[arg-type]
    return StreamReader(TranslatedEvents(translator, "claude")), translator, reported


def _event(name: str, **data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def test_events_before_an_error_in_the_same_read_are_still_sent() -> None:
    reader, _, reported = _reader()
    chunk = (
        _event("message_start", message={"id": "msg_1", "usage": {"input_tokens": 3}})
        + _event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + _event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
        + _event("error", error={"type": "overloaded_error", "message": "Overloaded"})
        + _event("content_block_delta", index=0, delta={"type": "text_delta", "text": "!"})
    )
    out, failure = reader.feed(chunk)
    assert [json.loads(o[6:])["choices"][0]["delta"] for o in out] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]
    assert failure is not None and failure.status == 529 and "Overloaded" in failure.message
    assert [u.prompt_tokens for u in reported] == [3]  # reported, not written to the context


def test_an_event_split_across_reads_is_translated_once_whole() -> None:
    reader, translator, _ = _reader()
    whole = _event("content_block_delta", index=0, delta={"type": "text_delta", "text": "yes"})
    first, _ = reader.feed(whole[:20])
    assert first == []
    rest, failure = reader.feed(whole[20:])
    assert failure is None and [json.loads(o[6:])["choices"][0]["delta"] for o in rest] == [
        {"role": "assistant", "content": ""},
        {"content": "yes"},
    ]
    with pytest.raises(UpstreamFailure, match="before message_stop"):
        translator.close()
