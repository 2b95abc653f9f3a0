"""The OpenAI wire protocol (chat completions, completions, embeddings, models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..core.env import resolve
from ..core.sse import DONE, parse_event
from ..core.usage import Usage
from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.value_types import Text
from .base import UpstreamReply, UpstreamRequest
from .transport import Answer, HttpAdapter, Post, StreamDecoder, apply_header_overrides

if TYPE_CHECKING:
    from ..core.generation import ProviderSpec
    from .clients import HttpClients

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


class OpenAIAdapter(HttpAdapter):
    """Speaks the OpenAI HTTP API: requests go out as received (or re-serialised when a module
    changed them), answers come back as they are; only usage is read on the way."""

    default_base_url = KIND.base_url or ""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
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
        return apply_header_overrides(headers, request.ctx)

    def payload(self, request: UpstreamRequest) -> bytes:
        ctx = request.ctx
        wants_usage = (
            request.stream and request.endpoint != "embeddings" and not caller_asked_usage(ctx.body)
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

    def prepare(self, request: UpstreamRequest) -> Post:
        return Post(self.url(request), self.payload(request), self.request_headers(request))

    def reply(self, request: UpstreamRequest, answer: Answer) -> UpstreamReply:
        return UpstreamReply(answer.status, answer.headers, answer.body, _usage_of(answer.body))

    def decoder(self, request: UpstreamRequest) -> StreamDecoder:
        return OpenAIEvents(request.on_usage, keep_usage_chunk=caller_asked_usage(request.ctx.body))


class OpenAIEvents(StreamDecoder):
    """OpenAI's own events, passed on unparsed; an event that mentions usage is read for it,
    and the usage-only chunk the gateway asked for (but the caller did not) is dropped."""

    __slots__ = ("keep_usage_chunk", "on_usage")

    def __init__(self, on_usage: Callable[[Usage], None], *, keep_usage_chunk: bool) -> None:
        self.on_usage = on_usage
        self.keep_usage_chunk = keep_usage_chunk

    def event(self, raw: bytes, out: list[bytes]) -> None:
        if b'"usage"' in raw:  # cheap test first: most events are content deltas
            data = parse_event(raw).data
            if data and data != DONE:
                try:
                    decoded = orjson.loads(data)
                except orjson.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, dict) and isinstance(decoded.get("usage"), dict):
                    self.on_usage(Usage.from_openai(decoded["usage"]))
                    if not self.keep_usage_chunk and not decoded.get("choices"):
                        return
        out.append(raw)


def caller_asked_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _usage_of(body: bytes) -> Usage | None:
    if b'"usage"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    return Usage.from_openai(usage) if isinstance(usage, dict) else None
