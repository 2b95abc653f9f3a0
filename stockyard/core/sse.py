"""Server-sent events: incremental framing, usage capture, and the error event."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

DONE = b"[DONE]"


def event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def error_event(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event that ends a stream that failed after its first byte (never a fake [DONE])."""
    return event(
        orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})
    )


class EventSplitter:
    """Split a byte stream into whole SSE events (each ending with a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        parts = data.split(b"\n\n")
        self._buffer = parts.pop()
        return [p + b"\n\n" for p in parts if p.strip()]

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(raw: bytes) -> bytes | None:
    """The ``data:`` payload of one event (lines joined), or None for comments/other fields."""
    lines = [line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


async def openai_stream(
    source: AsyncIterator[bytes],
    on_json: Callable[[dict[str, Any]], bool],
) -> AsyncIterator[bytes]:
    """Re-frame an OpenAI-style SSE stream event by event.

    ``on_json`` sees each decoded event that mentions usage and returns False to drop it (the
    usage-only chunk the gateway asked for but the caller did not). Other events pass unparsed.
    """
    splitter = EventSplitter()
    async for chunk in source:
        out = []
        for raw in splitter.feed(chunk):
            if b'"usage"' in raw:
                data = event_data(raw)
                if data and data != DONE:
                    try:
                        decoded = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        decoded = None
                    if isinstance(decoded, dict) and not on_json(decoded):
                        continue
            out.append(raw)
        if out:
            yield b"".join(out)
    rest = splitter.rest()
    if rest.strip():
        yield rest
