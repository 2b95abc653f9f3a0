"""What the Anthropic and Gemini adapters share: reading OpenAI chat requests, writing OpenAI
chat answers and stream chunks, and an adapter base whose answers are translated on the way
(the HTTP exchange itself is :mod:`~stockyard.providers.transport`'s).

The gateway speaks the OpenAI chat-completions shape inside; an adapter for another wire
protocol translates the request out and the answer (whole, or event by event) back in.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..core.env import resolve
from ..core.sse import DONE, event, parse_event
from ..core.usage import Usage
from ..exceptions import UpstreamFailure
from .base import UpstreamReply, UpstreamRequest
from .openai import caller_asked_usage
from .transport import (
    Answer,
    HttpAdapter,
    Post,
    StreamDecoder,
    apply_header_overrides,
)

if TYPE_CHECKING:
    from ..core.context import RequestContext
    from ..core.generation import ProviderSpec
    from .clients import HttpClients

# --- failures ---------------------------------------------------------------------------------


def unsupported(message: str) -> UpstreamFailure:
    """A request this provider cannot take: a 400 for the caller, no failover, no network."""
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    )
    return UpstreamFailure("status", message, status=400, body=body)


def unreadable(name: str, what: str) -> UpstreamFailure:
    """The provider answered 2xx with something we cannot read: a 502, like a broken server."""
    message = f"{name} sent {what}"
    body = orjson.dumps({"error": {"message": message, "type": "upstream_error", "code": None}})
    return UpstreamFailure("status", message, status=502, body=body)


# --- reading the OpenAI request ---------------------------------------------------------------


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<data>`` -> (mime, base64 data); None for anything else."""
    if not url.startswith("data:") or "," not in url:
        return None
    head, data = url[5:].split(",", 1)
    params = head.split(";")
    if "base64" not in params[1:]:
        return None
    return (params[0] or "application/octet-stream", data)


def content_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as normalised parts:

    ``{"type": "text", "text"}``, ``{"type": "image", "mime", "data"}`` (base64),
    ``{"type": "image", "url"}`` or ``{"type": "file", "mime", "data"}``. Each keeps the
    caller's ``cache_control`` (an Anthropic extension some clients send) when present.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise unsupported(f"{where}: `content` must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for item in content:
        if isinstance(item, str):  # tolerated: a bare string in the list
            item = {"type": "text", "text": item}
        if not isinstance(item, dict):
            raise unsupported(f"{where}: every content part must be an object")
        kind = item.get("type")
        part: dict[str, Any]
        if kind in ("text", "input_text", "refusal"):
            text = item.get("text", item.get("refusal"))
            if not isinstance(text, str):
                raise unsupported(f"{where}: a text part needs `text`")
            if not text:
                continue
            part = {"type": "text", "text": text}
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise unsupported(f"{where}: an image_url part needs `image_url.url`")
            inline = parse_data_url(url)
            if inline is not None:
                part = {"type": "image", "mime": inline[0], "data": inline[1]}
            elif url.startswith(("http://", "https://")):
                part = {"type": "image", "url": url}
            else:
                raise unsupported(f"{where}: an image must be an http(s) URL or a base64 data URL")
        elif kind == "file":
            file = item["file"] if isinstance(item.get("file"), dict) else {}
            inline = parse_data_url(str(file.get("file_data") or ""))
            if inline is None:
                raise unsupported(
                    f"{where}: only inline files (`file.file_data` as a base64 data URL) "
                    "can be translated; uploaded file ids cannot"
                )
            part = {"type": "file", "mime": inline[0], "data": inline[1]}
        else:
            raise unsupported(f"{where}: content parts of type `{kind}` cannot be translated")
        if isinstance(item.get("cache_control"), dict):
            part["cache_control"] = item["cache_control"]
        parts.append(part)
    return parts


def text_of(content: Any, where: str) -> str:
    """The text of a content that may only hold text (system prompts, tool results)."""
    texts = []
    for part in content_parts(content, where):
        if part["type"] != "text":
            raise unsupported(f"{where}: only text can be sent here")
        texts.append(part["text"])
    return "".join(texts)


def tool_arguments(arguments: Any, where: str) -> dict[str, Any]:
    """A tool call's ``arguments`` (a JSON string) as the object other providers expect."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise unsupported(f"{where}: the tool call's `arguments` are not valid JSON") from None
    if not isinstance(value, dict):
        raise unsupported(f"{where}: the tool call's `arguments` must be a JSON object")
    return value


def stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


def max_tokens_of(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The caller's ``tools`` as ``{"name", "description", "parameters"}`` (functions only)."""
    tools = body.get("tools") or []
    out = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise unsupported(f"{where}: only tools of type `function` can be translated")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise unsupported(f"{where}: a function tool needs `function.name`")
        parameters = function.get("parameters")
        out.append(
            {
                "name": function["name"],
                "description": function.get("description"),
                "parameters": parameters if isinstance(parameters, dict) else None,
            }
        )
    return out


def tool_choice_of(body: dict[str, Any]) -> str | tuple[str, str] | None:
    """``"auto"``, ``"none"``, ``"required"``, ``("function", name)`` or None (not given)."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice == "auto" or choice == "none" or choice == "required":
        return str(choice)
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return ("function", function["name"])
    raise unsupported("`tool_choice` must be auto, none, required or a named function")


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


# --- writing the OpenAI answer ----------------------------------------------------------------


def openai_usage(
    prompt: int, completion: int, cached: int = 0, reasoning: int = 0, total: int | None = None
) -> dict[str, Any]:
    """OpenAI's usage object; ``prompt`` includes ``cached``, ``completion`` includes
    ``reasoning``, as in OpenAI's own answers."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def choice(
    index: int, text: str, tool_calls: list[dict[str, Any]], finish: str | None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def completion(
    ident: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None
) -> bytes:
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


class ChunkWriter:
    """OpenAI ``chat.completion.chunk`` events for one stream."""

    __slots__ = ("base",)

    def __init__(self, ident: str, model: str) -> None:
        self.base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        payload = {
            **self.base,
            "choices": [
                {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            ],
        }
        return event(orjson.dumps(payload))

    def usage(self, usage: dict[str, Any]) -> bytes:
        return event(orjson.dumps({**self.base, "choices": [], "usage": usage}))

    @staticmethod
    def done() -> bytes:
        return event(DONE)


# --- the adapter: translated on the way in and out ------------------------------------------


class StreamTranslator(ABC):
    """A provider's stream events -> OpenAI chunks, one event at a time, for one stream."""

    def __init__(
        self, ctx: RequestContext, model: str, name: str, on_usage: Callable[[Usage], None]
    ) -> None:
        self.model = model
        self.name = name
        self.on_usage = on_usage  # the usage so far, each time the provider says more
        self.with_usage = caller_asked_usage(ctx.body)  # end with OpenAI's usage chunk
        self.writer: ChunkWriter | None = None

    @abstractmethod
    def feed(self, data: dict[str, Any], name: str | None) -> list[bytes]:
        """One provider event (its JSON, its ``event:`` name) -> OpenAI SSE events."""

    @abstractmethod
    def close(self) -> list[bytes]:
        """The provider's stream ended: the last OpenAI events, or raise if it was cut short."""


# What a translation may raise on an answer of a shape it did not expect: the provider's fault,
# reported as such (a 502), never a crash of the gateway.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class TranslatedEvents(StreamDecoder):
    """A provider's SSE events, each decoded from JSON and translated to OpenAI events."""

    __slots__ = ("name", "translator")

    def __init__(self, translator: StreamTranslator, name: str) -> None:
        self.translator = translator
        self.name = name

    def event(self, raw: bytes, out: list[bytes]) -> None:
        name, data = parse_event(raw)
        if data is None or not data.strip():
            return
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise unreadable(self.name, "a stream event that is not JSON") from None
        if not isinstance(decoded, dict):
            raise unreadable(self.name, "a stream event that is not a JSON object")
        try:
            out += self.translator.feed(decoded, name)
        except UpstreamFailure:
            raise
        except _SHAPE_ERRORS as error:
            raise unreadable(
                self.name, f"a stream event of an unexpected shape ({error!r})"
            ) from None

    def end(self, out: list[bytes]) -> None:
        out += self.translator.close()


class TranslatingAdapter(HttpAdapter):
    """An adapter for a protocol other than OpenAI's: subclasses say where and what to send,
    and how to read the answer; the transport does the exchange."""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
        self.extra_headers = {name: resolve(value) or "" for name, value in spec.headers}

    # what subclasses provide
    @abstractmethod
    def url(self, request: UpstreamRequest) -> str: ...

    @abstractmethod
    def auth_headers(self, request: UpstreamRequest) -> dict[str, str]: ...

    @abstractmethod
    def payload(self, request: UpstreamRequest) -> dict[str, Any]: ...

    @abstractmethod
    def translate_answer(
        self, request: UpstreamRequest, data: Any
    ) -> tuple[bytes, dict[str, Any] | None]:
        """A whole answer (decoded JSON) -> the OpenAI JSON body and OpenAI usage (if any)."""

    @abstractmethod
    def translator(self, request: UpstreamRequest) -> StreamTranslator:
        """A new translator for one stream; it reports usage through ``request.on_usage``."""

    # the adapter, in those terms
    def request_headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
            **self.extra_headers,
            **self.auth_headers(request),
        }
        return apply_header_overrides(headers, request.ctx)

    def prepare(self, request: UpstreamRequest) -> Post:
        url = self.url(request)
        body = orjson.dumps(self.payload(request))
        return Post(url, body, self.request_headers(request))

    def reply(self, request: UpstreamRequest, answer: Answer) -> UpstreamReply:
        try:
            data = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise unreadable(self.name, "an answer that is not JSON") from None
        try:
            body, usage = self.translate_answer(request, data)
        except UpstreamFailure:
            raise
        except _SHAPE_ERRORS as error:
            raise unreadable(self.name, f"an answer of an unexpected shape ({error!r})") from None
        headers = {**answer.headers, "content-type": "application/json"}
        counted = Usage.from_openai(usage) if usage is not None else None
        return UpstreamReply(answer.status, headers, body, counted)

    def decoder(self, request: UpstreamRequest) -> StreamDecoder:
        return TranslatedEvents(self.translator(request), self.name)
