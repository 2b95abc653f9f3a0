"""What a route's handler returns: a whole body, or a stream of SSE bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class GatewayResponse:
    """What the chain returns: a whole body, or a stream of already-framed bytes (SSE)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    # Run once when the request has ended, after the stream is closed (normally, with an error,
    # or by disconnect): the first step of the end-of-request sequence (runtime/end.py).
    on_close: list[Callable[[], Any]] = field(default_factory=list)
