"""What every provider adapter implements, and what it returns."""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..core.context import RequestContext
from ..core.generation import ProviderSpec
from ..exceptions import UpstreamFailure

if TYPE_CHECKING:  # aiohttp is imported when a request is sent: `stockyard check` never needs it
    from .clients import HttpClients


@dataclass(slots=True)
class Timeouts:
    total: float
    connect: float
    first_token: float | None


@dataclass(slots=True)
class UpstreamRequest:
    ctx: RequestContext
    provider: ProviderSpec
    endpoint: str  # "chat/completions", "completions" or "embeddings"
    model: str  # the model to ask this provider for (after any per-hop rewrite)
    stream: bool
    timeouts: Timeouts
    api_key: str | None


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streamed) answer, already in the OpenAI shape."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class UpstreamStream:
    """A stream whose first chunk has arrived: OpenAI-style SSE bytes from here on."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]  # starts with the first chunk
    close: Callable[[], Awaitable[None]]


class Adapter(Protocol):
    """One provider's adapter, made once per generation from its spec and the shared pools."""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        """One attempt: a whole answer, or a stream whose first chunk has arrived; raises
        :class:`~stockyard.exceptions.UpstreamFailure` otherwise."""
        ...


MAX_RETRY_AFTER = 86_400.0  # a day: anything longer is as good as "not soon"


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header, if any. Values that are neither a
    number nor an HTTP date are ignored, never an error: they come from outside."""
    ms = _finite(headers.get("retry-after-ms"))
    if ms is not None:
        return min(max(0.0, ms / 1000), MAX_RETRY_AFTER)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is None:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)  # HTTP dates are in GMT
        seconds = parsed.timestamp() - time.time()
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _finite(text: str | None) -> float | None:
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def error_message(body: bytes, limit: int = 500) -> str:
    """The human message inside an upstream error body (OpenAI, Anthropic or Google shapes)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:limit].decode("utf-8", "replace").strip()
        return text or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:limit]
        if isinstance(err, str):
            return err[:limit]
    return body[:limit].decode("utf-8", "replace")


def status_failure(status: int, headers: dict[str, str], body: bytes) -> UpstreamFailure:
    return UpstreamFailure(
        "status",
        error_message(body),
        status=status,
        body=body,
        headers=headers,
        retry_after=retry_after(headers),
    )
