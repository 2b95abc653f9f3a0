"""The OpenAI wire protocol (chat completions, completions, embeddings, models)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from ..core.env import resolve
from ..core.generation import ProviderSpec
from ..core.sse import openai_stream
from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.value_types import Text
from ..exceptions import UpstreamFailure
from .base import UpstreamReply, UpstreamRequest, UpstreamStream, status_failure

if TYPE_CHECKING:  # aiohttp is imported when a request is sent: `stockyard check` never needs it
    import aiohttp

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

KIND = ProviderKind(
    name="openai",
    doc="OpenAI, or any server that speaks the OpenAI API (set `base_url`).",
    protocol="openai",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    attributes=frozen_map(
        {
            "organization": AttributeSpec(
                "organization",
                "Sent as the OpenAI-Organization header.",
                'organization "org-…"',
                positional=(Text(allow_env=True),),
            ),
            "project": AttributeSpec(
                "project",
                "Sent as the OpenAI-Project header.",
                'project "proj_…"',
                positional=(Text(allow_env=True),),
            ),
        }
    ),
)


class OpenAIAdapter:
    """Speaks the OpenAI HTTP API over a pooled aiohttp session."""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        self.spec = spec
        self.clients = clients
        base = resolve(spec.base_url) or KIND.base_url or ""
        self.base_url = base.rstrip("/")
        headers = {"content-type": "application/json", "accept": "application/json"}
        for name, value in spec.headers:
            headers[name] = resolve(value) or ""
        for option, header in (
            ("organization", "OpenAI-Organization"),
            ("project", "OpenAI-Project"),
        ):
            if spec.options.get(option):
                headers[header] = resolve(spec.options[option]) or ""
        self.headers = headers

    def url(self, request: UpstreamRequest) -> str:
        return f"{self.base_url}/{request.endpoint}"

    def request_headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = dict(self.headers)
        if request.api_key:
            headers["authorization"] = f"Bearer {request.api_key}"
        if request.stream:
            headers["accept"] = "text/event-stream"
        ctx = request.ctx
        if ctx.upstream_headers:  # set by the `headers` module
            for name, value in ctx.upstream_headers.items():
                headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
                if value is not None:
                    headers[name] = value
        return headers

    def payload(self, request: UpstreamRequest) -> bytes:
        ctx = request.ctx
        wants_usage = (
            request.stream
            and request.endpoint != "embeddings"
            and not _caller_asked_usage(ctx.body)
        )
        if not ctx.body_changed and request.model == ctx.model and not wants_usage:
            return ctx.raw_body  # forwarded exactly as received
        body = dict(ctx.body)
        body["model"] = request.model
        if wants_usage:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return orjson.dumps(body)

    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        """One attempt. Timeouts: `connect` bounds opening the connection. A plain request must
        be answered completely within `total`. A stream must deliver its first chunk within
        `first_token` (and `total`), counted from the request, headers included; after that,
        `total` bounds each wait between chunks rather than the whole answer, which may stream
        for as long as the model keeps producing."""
        import aiohttp

        session = self.clients.session(self.spec.name, self.spec.max_connections)
        timeouts = request.timeouts
        name = self.spec.name
        if request.stream:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.total
            )
            limit = min(timeouts.total, timeouts.first_token or timeouts.total)
        else:
            timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
            limit = None  # aiohttp's `total` covers the whole exchange
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(limit):
                response = await session.post(
                    self.url(request),
                    data=self.payload(request),
                    headers=self.request_headers(request),
                    timeout=timeout,
                )
                headers = {
                    k.lower(): v
                    for k, v in response.headers.items()
                    if k.lower() not in HOP_HEADERS
                }
                if response.status >= 400:
                    body = await response.read()
                    raise status_failure(response.status, headers, body)
                if not request.stream:
                    body = await response.read()
                    request.ctx.usage.update_from_openai(_usage_of(body))
                    return UpstreamReply(response.status, headers, body)
                first = await response.content.readany()
        except TimeoutError:
            raise timeout_failure(request, response, limit, name) from None
        except aiohttp.ClientError as error:
            raise connection_failure(error, response, name) from None
        except UpstreamFailure:
            if response is not None:
                response.release()
            raise
        if not first:
            response.close()
            raise UpstreamFailure("connect", f"{name} ended the stream before any data")
        return UpstreamStream(
            response.status,
            headers,
            openai_stream(_chunks(first, response, name), _usage_hook(request)),
            _closer(response),
        )

    async def aclose(self) -> None:
        return None


def _caller_asked_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _usage_hook(request: UpstreamRequest):  # type: ignore[no-untyped-def]
    ctx = request.ctx
    keep_usage_chunk = _caller_asked_usage(ctx.body)

    def on_json(chunk: dict[str, Any]) -> bool:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            ctx.usage.update_from_openai(usage)
            if not keep_usage_chunk and not chunk.get("choices"):
                return False
        return True

    return on_json


def _usage_of(body: bytes) -> dict[str, Any] | None:
    if b'"usage"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data.get("usage") if isinstance(data, dict) else None


async def _chunks(
    first: bytes, response: aiohttp.ClientResponse, name: str
) -> AsyncIterator[bytes]:
    import aiohttp

    finished = False
    try:
        yield first
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"{name} stopped sending in the middle of the stream"
            ) from None
        except aiohttp.ClientError as error:
            raise UpstreamFailure(
                "connect", f"{name} broke the connection mid-stream: {_reason(error)}"
            ) from None
        finished = True
    finally:
        # An unfinished stream (caller gone, error) closes the connection: the upstream stops.
        response.release() if finished else response.close()


def _closer(response: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    async def close() -> None:
        response.close()

    return close


def _seconds(value: float) -> str:
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.split(" [", 1)[0][:200]


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
