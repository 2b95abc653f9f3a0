"""What every provider adapter is, takes and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.context import RequestContext
from ..core.generation import ProviderSpec
from ..core.usage import Usage

if TYPE_CHECKING:  # aiohttp is imported when a request is sent: `stockyard check` never needs it
    from .clients import HttpClients


@dataclass(slots=True)
class Timeouts:
    total: float
    connect: float
    first_token: float | None


def _ignore_usage(usage: Usage) -> None:
    return None


@dataclass(slots=True)
class UpstreamRequest:
    ctx: RequestContext  # read only: an adapter reports through what it returns and `on_usage`
    provider: ProviderSpec
    endpoint: str  # "chat/completions", "completions" or "embeddings"
    model: str  # the model to ask this provider for (after any per-hop rewrite)
    stream: bool
    timeouts: Timeouts
    api_key: str | None
    # Where a stream reports its usage, each time it learns more (the whole count so far);
    # the dispatcher owns it. A whole answer carries its usage in UpstreamReply instead.
    on_usage: Callable[[Usage], None] = _ignore_usage


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streamed) answer, already in the OpenAI shape."""

    status: int
    headers: dict[str, str]
    body: bytes
    usage: Usage | None = None  # None: the provider reported none


@dataclass(slots=True)
class UpstreamStream:
    """A stream whose first chunk has arrived: OpenAI-style SSE bytes from here on."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]  # starts with the first chunk
    close: Callable[[], Awaitable[None]]


class Adapter(ABC):
    """One provider's adapter, made once per generation from its spec and the shared pools.

    An adapter holds no resources of its own (the connection pools are
    :class:`~stockyard.providers.clients.HttpClients`'), so nothing closes it.
    """

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        self.spec = spec
        self.name = spec.name
        self.clients = clients

    @abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        """One attempt: a whole answer, or a stream whose first chunk has arrived; raises
        :class:`~stockyard.exceptions.UpstreamFailure` otherwise."""
