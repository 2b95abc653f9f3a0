"""Server-sent events: the one parser (framing and fields), and the events the gateway writes.

Framing follows the SSE specification: a line ends with CRLF, LF or CR; a blank line ends an
event; a line starting with ``:`` is a comment; ``field: value`` loses exactly one space after
the colon. Every reader of SSE in Stockyard (the adapters, the cache, redact) uses this one.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

DONE = b"[DONE]"
_BOM = b"\xef\xbb\xbf"


def event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def error_event(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event that ends a stream that failed after its first byte (never a fake [DONE])."""
    return event(
        orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})
    )


class EventSplitter:
    """Split a byte stream, chunk by chunk, into whole SSE events.

    Each event comes out as its raw lines with LF line ends, closed by a blank line
    (``...\\n\\n``), so an event can be passed on unparsed. Events with no visible character
    (extra blank lines) are dropped; comment-only events are kept (a keep-alive may matter to
    the reader).
    """

    __slots__ = ("_buffer", "_cr", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._cr = False  # the last chunk ended in CR: a LF at the start of the next is its pair
        self._started = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:  # nothing to add, and a pending CR must still meet the next byte
            return []
        if not self._started:  # a stream may start with a byte order mark, which is not data
            self._started = True
            chunk = chunk.removeprefix(_BOM)
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:  # rare: most servers end lines with LF alone
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._buffer + chunk if self._buffer else chunk
        parts = data.split(b"\n\n")
        self._buffer = parts.pop()
        return [part + b"\n\n" for part in parts if part.strip()]

    def rest(self) -> bytes:
        """What came after the last whole event (the stream ended without a blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest


def split_events(body: bytes) -> list[bytes]:
    """Every event of a whole SSE body; a last event the body did not close is closed."""
    splitter = EventSplitter()
    events = splitter.feed(body)
    rest = splitter.rest()
    if rest.strip():
        events.append(rest.rstrip(b"\n") + b"\n\n")
    return events


class Event(NamedTuple):
    name: str | None  # the `event:` field; None when absent or empty (the default type)
    data: bytes | None  # the `data:` lines joined with LF; None when the event has none


def parse_event(raw: bytes) -> Event:
    """The fields of one event as :class:`EventSplitter` returns it (LF line ends)."""
    name: str | None = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank, or a `:` comment
            continue
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace") or None
        # `id` and `retry` steer a browser's reconnection; a gateway has no use for them
    return Event(name, b"\n".join(data) if data else None)


def event_data(raw: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event, or None (comments, other fields only)."""
    return parse_event(raw).data
