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
    # Called once when a stream ends (normally, with an error, or by disconnect).
    on_close: list[Callable[[], Any]] = field(default_factory=list)
