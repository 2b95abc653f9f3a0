"""The Anthropic Messages API, translated to and from the OpenAI chat shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..core.context import RequestContext
from ..core.generation import ProviderSpec
from ..core.usage import Usage
from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.value_types import Integer, Text
from ..exceptions import UpstreamFailure
from .base import UpstreamRequest
from .translate import (
    ChunkWriter,
    StreamTranslator,
    TranslatingAdapter,
    choice,
    completion,
    content_parts,
    function_tools,
    max_tokens_of,
    new_id,
    openai_usage,
    stop_sequences,
    text_of,
    tool_arguments,
    tool_call,
    tool_choice_of,
    unsupported,
)

if TYPE_CHECKING:
    from .clients import HttpClients

KIND = ProviderKind(
    name="anthropic",
    doc="Anthropic's Messages API.",
    protocol="anthropic",
    base_url="https://api.anthropic.com/v1",
    key_env="ANTHROPIC_API_KEY",
    attributes=frozen_map(
        {
            "version": AttributeSpec(
                "version",
                "The anthropic-version header.",
                'version "2023-06-01"',
                positional=(Text(),),
            ),
            "max_tokens": AttributeSpec(
                "max_tokens",
                "max_tokens sent when the caller sets none (Anthropic requires it).",
                "max_tokens 4096",
                positional=(Integer(1, 1_000_000),),
            ),
        }
    ),
)


DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

# Anthropic's stop_reason -> OpenAI's finish_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status each error type is sent with; a stream's `error` event carries only the type.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "api_error": 500,
    "overloaded_error": 529,
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_to_openai(usage: Any) -> dict[str, Any]:
    """Anthropic counts fresh input, cache reads and cache writes apart; OpenAI's
    ``prompt_tokens`` is all three, of which ``cached_tokens`` were cache reads."""
    usage = usage if isinstance(usage, dict) else {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + cached + count("cache_creation_input_tokens")
    return openai_usage(prompt, count("output_tokens"), cached)


def _blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = []
    for part in parts:
        block: dict[str, Any]
        if part["type"] == "text":
            block = {"type": "text", "text": part["text"]}
        elif part["type"] == "image" and "url" in part:
            block = {"type": "image", "source": {"type": "url", "url": part["url"]}}
        elif part["type"] == "image":
            source = {"type": "base64", "media_type": part["mime"], "data": part["data"]}
            block = {"type": "image", "source": source}
        elif part["mime"] == "application/pdf":
            source = {"type": "base64", "media_type": part["mime"], "data": part["data"]}
            block = {"type": "document", "source": source}
        else:
            raise unsupported(f"Anthropic accepts PDF documents, not {part['mime']} files")
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def to_anthropic(body: dict[str, Any], model: str, default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat-completions request as an Anthropic Messages request."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise unsupported("Anthropic returns one choice per request: `n` must be 1")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise unsupported(
            f"`response_format` {response_format.get('type')} cannot be translated for Anthropic"
        )
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:  # Anthropic alternates roles
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for position, message in enumerate(body.get("messages") or []):
        where = f"messages[{position}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            for block in _blocks(content_parts(content, where)):
                if block["type"] != "text":
                    raise unsupported(f"{where}: a system prompt may only hold text")
                system.append(block)
        elif role == "user":
            add("user", _blocks(content_parts(content, where)))
        elif role == "assistant":
            blocks = _blocks(content_parts(content, where))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or new_id("toolu_"),
                        "name": function.get("name"),
                        "input": tool_arguments(function.get("arguments"), where),
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise unsupported(f"{where}: a tool message needs `tool_call_id`")
            result = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": text_of(content, where),
            }
            add("user", [result])
        else:
            raise unsupported(f"{where}: messages with role `{role}` cannot be translated")

    for message in messages:  # a lone text block reads better as a plain string
        blocks = message["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text" and len(blocks[0]) == 2:
            message["content"] = blocks[0]["text"]

    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens_of(body) or default_max_tokens,
    }
    if system:
        if any("cache_control" in block for block in system):
            out["system"] = system
        else:
            out["system"] = "\n\n".join(block["text"] for block in system)
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float) and not isinstance(body.get(name), bool):
            out[name] = body[name]
    stops = stop_sequences(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    tools = function_tools(body)
    if tools:
        out["tools"] = [
            {
                "name": tool["name"],
                **({"description": tool["description"]} if tool["description"] else {}),
                "input_schema": tool["parameters"] or {"type": "object", "properties": {}},
            }
            for tool in tools
        ]
        picked = tool_choice_of(body)
        choice: dict[str, Any] | None = None
        if picked == "none":
            choice = {"type": "none"}
        elif picked == "required":
            choice = {"type": "any"}
        elif isinstance(picked, tuple):
            choice = {"type": "tool", "name": picked[1]}
        elif picked == "auto" or body.get("parallel_tool_calls") is False:
            choice = {"type": "auto"}
        if choice is not None and body.get("parallel_tool_calls") is False and picked != "none":
            choice["disable_parallel_tool_use"] = True
        if choice is not None:
            out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def from_anthropic(data: dict[str, Any], model: str) -> tuple[bytes, dict[str, Any]]:
    """An Anthropic Message as an OpenAI chat.completion body, and its OpenAI usage."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block["id"], block["name"], block.get("input") or {}))
    usage = usage_to_openai(data.get("usage"))
    answer = choice(0, "".join(text), calls, finish_reason(data.get("stop_reason")))
    body = completion(data.get("id") or new_id("msg_"), data.get("model") or model, [answer], usage)
    return body, usage


class AnthropicStream(StreamTranslator):
    """Anthropic stream events -> OpenAI chunks, one event at a time.

    The role chunk waits for the first content block rather than going out with
    ``message_start``: an ``error`` event that comes before the model has produced anything
    then reaches the gateway before any byte reached the caller, so the route can still fail
    over, and ``first_token`` measures the wait for the model's first output.
    """

    def __init__(
        self, ctx: RequestContext, model: str, name: str, on_usage: Callable[[Usage], None]
    ) -> None:
        super().__init__(ctx, model, name, on_usage)
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.led = False  # the role chunk was sent
        self.finished = False  # the final chunk (with finish_reason) was sent
        self.stopped = False  # message_stop arrived

    def _lead(self) -> list[bytes]:
        if self.writer is None:  # tolerate a stream without message_start
            self.writer = ChunkWriter(new_id("msg_"), self.model)
        if self.led:
            return []
        self.led = True
        return [self.writer.chunk({"role": "assistant", "content": ""})]

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            self.on_usage(Usage.from_openai(usage_to_openai(self.usage)))

    def feed(self, data: dict[str, Any], name: str | None) -> list[bytes]:
        kind = data.get("type") or name
        if kind == "message_start":
            message = data.get("message") or {}
            self.writer = ChunkWriter(
                message.get("id") or new_id("msg_"), message.get("model") or self.model
            )
            self._usage(message.get("usage"))
            return []
        if kind == "content_block_start":
            out = self._lead()
            assert self.writer is not None
            block = data.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                out.append(self.writer.chunk({"content": block["text"]}))
            elif block.get("type") == "tool_use":
                index = self.tools[data.get("index", -1)] = len(self.tools)
                arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
                call = {
                    "index": index,
                    "id": block.get("id") or new_id("toolu_"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
                out.append(self.writer.chunk({"tool_calls": [call]}))
            # thinking and server-side tool blocks have no OpenAI equivalent
            return out
        if kind == "content_block_delta":
            out = self._lead()
            assert self.writer is not None
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                out.append(self.writer.chunk({"content": delta["text"]}))
            elif delta.get("type") == "input_json_delta" and data.get("index") in self.tools:
                partial = delta.get("partial_json") or ""
                if partial:
                    call = {"index": self.tools[data["index"]], "function": {"arguments": partial}}
                    out.append(self.writer.chunk({"tool_calls": [call]}))
            return out
        if kind == "message_delta":
            self._usage(data.get("usage"))
            reason = (data.get("delta") or {}).get("stop_reason")
            if not reason or self.finished:
                return []
            out = self._lead()
            assert self.writer is not None
            self.finished = True
            out.append(self.writer.chunk({}, finish_reason(reason)))
            return out
        if kind == "message_stop":
            self.stopped = True
            out = self._lead()
            assert self.writer is not None
            if not self.finished:
                self.finished = True
                out.append(self.writer.chunk({}, "stop"))
            if self.with_usage:
                out.append(self.writer.usage(usage_to_openai(self.usage)))
            out.append(self.writer.done())
            return out
        if kind == "error":
            error = data["error"] if isinstance(data.get("error"), dict) else {}
            kind = error.get("type") or "api_error"
            message = error.get("message") or kind
            raise UpstreamFailure(
                "status",
                f"{message} ({kind})",
                status=ERROR_STATUS.get(kind, 500),
                body=orjson.dumps(data),
            )
        return []  # ping, content_block_stop and event types added later

    def close(self) -> list[bytes]:
        if not self.stopped:
            raise UpstreamFailure("connect", f"{self.name} ended the stream before message_stop")
        return []


class AnthropicAdapter(TranslatingAdapter):
    """Anthropic's Messages API (POST /v1/messages) behind the OpenAI chat shape."""

    default_base_url = KIND.base_url or ""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
        self.version = spec.options.get("version") or DEFAULT_VERSION
        self.max_tokens = spec.options.get("max_tokens") or DEFAULT_MAX_TOKENS

    def url(self, request: UpstreamRequest) -> str:
        return f"{self.base_url}/messages"

    def auth_headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if request.api_key:
            headers["x-api-key"] = request.api_key
        return headers

    def payload(self, request: UpstreamRequest) -> dict[str, Any]:
        if request.endpoint != "chat/completions":
            raise unsupported(
                f"provider `{self.name}` (Anthropic) serves /v1/chat/completions only, "
                f"not /v1/{request.endpoint}"
            )
        body = dict(request.ctx.body)
        body["stream"] = request.stream
        return to_anthropic(body, request.model, self.max_tokens)

    def translate_answer(
        self, request: UpstreamRequest, data: Any
    ) -> tuple[bytes, dict[str, Any] | None]:
        return from_anthropic(data, request.model)

    def translator(self, request: UpstreamRequest) -> AnthropicStream:
        return AnthropicStream(request.ctx, request.model, self.name, request.on_usage)
