"""The one way Stockyard speaks to an upstream over HTTP.

An adapter only translates: it says what to send (:class:`Post`), how to read a whole answer,
and how to turn the upstream's SSE events into the OpenAI events the caller gets
(:class:`StreamDecoder`). This module owns the rest, the same for every provider: the pooled
session, the timeouts (connect, total, first token), error statuses, connection and timeout
failures, reading a stream chunk by chunk with its failures mid-stream, and closing.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..core.context import RequestContext
from ..core.env import resolve
from ..core.sse import EventSplitter
from ..exceptions import UpstreamFailure
from .base import Adapter, UpstreamReply, UpstreamRequest, UpstreamStream

if TYPE_CHECKING:  # aiohttp is imported when a request is sent: `stockyard check` never needs it
    import aiohttp

    from ..core.generation import ProviderSpec
    from .clients import HttpClients

# Response headers that describe the hop, not the payload, and are not passed back.
HOP_HEADERS = frozenset(
    {
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "set-cookie",
        "date",
        "server",
    }
)


@dataclass(frozen=True, slots=True)
class Post:
    """What an adapter sends: a POST of ``body`` to ``url``."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole 2xx answer as it came (hop headers dropped, names lower-cased)."""

    status: int
    headers: dict[str, str]
    body: bytes


class StreamDecoder(ABC):
    """The upstream's SSE events -> the OpenAI SSE bytes sent to the caller, for one stream.

    Each method appends what it has to send to ``out``; raising
    :class:`~stockyard.exceptions.UpstreamFailure` fails the attempt (before the first output,
    the route can still fail over; after it, the caller's stream ends with an error event).
    """

    __slots__ = ()

    @abstractmethod
    def event(self, raw: bytes, out: list[bytes]) -> None:
        """One whole event as :class:`~stockyard.core.sse.EventSplitter` returns it."""

    def end(self, out: list[bytes]) -> None:
        """The upstream ended the stream: the last events, or raise if it was cut short."""
        return None


class StreamReader:
    """A decoder fed from network chunks: one event splitter, failures kept in order."""

    __slots__ = ("decoder", "splitter")

    def __init__(self, decoder: StreamDecoder) -> None:
        self.decoder = decoder
        self.splitter = EventSplitter()

    def feed(self, chunk: bytes) -> tuple[list[bytes], UpstreamFailure | None]:
        """The output for one network chunk and, if an event in it failed, the failure (the
        output of the events before it is still returned, to be sent first)."""
        out: list[bytes] = []
        event = self.decoder.event
        try:
            for raw in self.splitter.feed(chunk):
                event(raw, out)
        except UpstreamFailure as failure:
            return out, failure
        return out, None

    def end(self) -> list[bytes]:
        out: list[bytes] = []
        rest = self.splitter.rest()
        if rest.strip():
            self.decoder.event(rest, out)
        self.decoder.end(out)
        return out


class HttpAdapter(Adapter):
    """An adapter whose provider is reached over HTTP through this module."""

    default_base_url: str = ""
    missing_base_url = "has no base_url (is its variable set?)"

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
        self.base_url = (resolve(spec.base_url) or self.default_base_url).rstrip("/")

    @abstractmethod
    def prepare(self, request: UpstreamRequest) -> Post:
        """What to send; raises UpstreamFailure for a request this provider cannot take."""

    @abstractmethod
    def reply(self, request: UpstreamRequest, answer: Answer) -> UpstreamReply:
        """A whole answer -> the OpenAI-shaped reply, with the usage it reports."""

    @abstractmethod
    def decoder(self, request: UpstreamRequest) -> StreamDecoder:
        """A new decoder for one stream; it reports usage through ``request.on_usage``."""

    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        if not self.base_url:
            raise UpstreamFailure("connect", f"{self.name} {self.missing_base_url}")
        post = self.prepare(request)
        reader = StreamReader(self.decoder(request)) if request.stream else None
        result = await exchange(self.clients, self.spec, request, post, reader)
        return self.reply(request, result) if isinstance(result, Answer) else result


def apply_header_overrides(headers: dict[str, str], ctx: RequestContext) -> dict[str, str]:
    """Headers set (or removed, with None) by the `headers` module win, whatever their case."""
    for name, value in ctx.upstream_headers.items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
    return headers


# --- the exchange -------------------------------------------------------------------------------


async def exchange(
    clients: HttpClients,
    spec: ProviderSpec,
    request: UpstreamRequest,
    post: Post,
    reader: StreamReader | None,
) -> Answer | UpstreamStream:
    """One attempt: a whole answer (no ``reader``), or a stream (decoded by ``reader``)
    returned once its first output is ready, so that an error the upstream reports before any
    answer (an error event straight away) is still a failure the route can fail over on.

    Timeouts: `connect` bounds opening the connection. A whole answer must arrive complete
    within `total`. A stream must deliver its first output within `first_token` (and
    `total`), counted from the request, headers included; after that, `total` bounds each wait
    between chunks rather than the whole answer, which may stream for as long as the model
    keeps producing."""
    import aiohttp

    name = spec.name
    timeouts = request.timeouts
    limit: float | None
    if reader is None:
        timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
        limit = None  # aiohttp's `total` covers the whole exchange
    else:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.total
        )
        limit = min(timeouts.total, timeouts.first_token or timeouts.total)
    session = clients.session(name, spec.max_connections)
    response: aiohttp.ClientResponse | None = None
    first: list[bytes] = []
    ended = False
    try:
        async with asyncio.timeout(limit):
            response = await session.post(
                post.url, data=post.body, headers=post.headers, timeout=timeout
            )
            headers = {
                k.lower(): v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS
            }
            if response.status >= 400:
                raise status_failure(response.status, headers, await response.read())
            if reader is None:
                return Answer(response.status, headers, await response.read())
            while not first:
                chunk = await response.content.readany()
                if not chunk:
                    ended = True
                    first = reader.end()
                    if not first:
                        raise UpstreamFailure("connect", f"{name} ended the stream before any data")
                    break
                first, failure = reader.feed(chunk)
                if failure is not None:  # nothing was sent yet: fail, and fail over
                    raise failure
    except TimeoutError:
        raise timeout_failure(request, response, limit, name) from None
    except aiohttp.ClientError as error:
        raise connection_failure(error, response, name) from None
    except UpstreamFailure:
        if response is not None:  # an error status (read whole), or a failed first event
            response.release() if response.status >= 400 else response.close()
        raise
    headers["content-type"] = "text/event-stream"
    if ended:
        response.release()
        return UpstreamStream(response.status, headers, _replay(first), _closer(response))
    return UpstreamStream(
        response.status, headers, _stream(first, response, reader, name), _closer(response)
    )


async def _stream(
    first: list[bytes], response: aiohttp.ClientResponse, reader: StreamReader, name: str
) -> AsyncIterator[bytes]:
    """The stream after its first output: decoded as chunks arrive, nothing held back beyond
    the end of the event being read. A failure raises (the gateway turns it into an SSE error
    event), and a stream cut short never gets a ``[DONE]``."""
    import aiohttp

    finished = False
    try:
        yield b"".join(first)
        try:
            async for chunk in response.content.iter_any():
                out, failure = reader.feed(chunk)
                if out:
                    yield b"".join(out)
                if failure is not None:
                    raise failure
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"{name} stopped sending in the middle of the stream"
            ) from None
        except aiohttp.ClientError as error:
            raise UpstreamFailure(
                "connect", f"{name} broke the connection mid-stream: {_reason(error)}"
            ) from None
        out = reader.end()
        finished = True
        if out:
            yield b"".join(out)
    finally:
        # An unfinished stream (caller gone, error) closes the connection: the upstream stops.
        response.release() if finished else response.close()


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(chunks)


def _closer(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        response.close()

    return close


# --- failures -----------------------------------------------------------------------------------


def status_failure(status: int, headers: dict[str, str], body: bytes) -> UpstreamFailure:
    return UpstreamFailure(
        "status",
        error_message(body),
        status=status,
        body=body,
        headers=headers,
        retry_after=retry_after(headers),
    )


def timeout_failure(
    request: UpstreamRequest, response: Any, limit: float | None, name: str
) -> UpstreamFailure:
    """The failure for a timeout, saying which wait ran out; closes a half-read response."""
    timeouts = request.timeouts
    if response is not None:
        response.close()
    if request.stream and timeouts.first_token and limit == timeouts.first_token:
        message = f"{name} sent no first token within {_seconds(limit)}"
    elif response is None:
        message = f"no response from {name} within {_seconds(limit or timeouts.total)}"
    else:
        message = f"{name} did not finish answering within {_seconds(limit or timeouts.total)}"
    return UpstreamFailure("timeout", message)


def connection_failure(error: BaseException, response: Any, name: str) -> UpstreamFailure:
    """The failure for a connection that could not be made, or broke mid-answer."""
    if response is None:
        return UpstreamFailure("connect", f"cannot reach {name}: {_reason(error)}")
    response.close()
    return UpstreamFailure("connect", f"{name} broke the connection: {_reason(error)}")


def _seconds(value: float) -> str:
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.split(" [", 1)[0][:200]


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
            return str(err["message"][:limit])
        if isinstance(err, str):
            return err[:limit]
    return body[:limit].decode("utf-8", "replace")
