"""What the Anthropic and Gemini adapters share: reading OpenAI chat requests, writing OpenAI
chat answers and stream chunks, and one HTTP exchange whose answer is translated on the way.

The gateway speaks the OpenAI chat-completions shape inside; an adapter for another wire
protocol translates the request out and the answer (whole, or event by event) back in.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..core.context import RequestContext
from ..core.env import resolve
from ..core.generation import ProviderSpec
from ..core.sse import DONE, EventSplitter, event
from ..exceptions import UpstreamFailure
from .base import UpstreamReply, UpstreamRequest, UpstreamStream, status_failure
from .openai import HOP_HEADERS, _chunks, _closer, connection_failure, timeout_failure

if TYPE_CHECKING:  # aiohttp is imported when a request is sent: `stockyard check` never needs it
    import aiohttp

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
            file = item.get("file") if isinstance(item.get("file"), dict) else {}
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
    if choice in ("auto", "none", "required"):
        return choice  # type: ignore[no-any-return]
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return ("function", function["name"])
    raise unsupported("`tool_choice` must be auto, none, required or a named function")


def caller_asked_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


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


# --- the exchange -----------------------------------------------------------------------------


class StreamTranslator(Protocol):
    def feed(self, data: dict[str, Any], name: str | None) -> list[bytes]:
        """One provider event (its JSON, its ``event:`` name) -> OpenAI SSE events."""
        ...

    def close(self) -> list[bytes]:
        """The provider's stream ended: the last OpenAI events, or raise if it was cut short."""
        ...


def sse_event(raw: bytes) -> tuple[str | None, bytes | None]:
    """The ``event:`` name and the joined ``data:`` lines of one SSE event."""
    name = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, (b"\n".join(data) if data else None)


class TranslatingAdapter:
    """An adapter for a protocol other than OpenAI's: subclasses say where and what to send,
    and how to read the answer; this class owns the HTTP exchange, timeouts and failures,
    with the same rules as the OpenAI adapter."""

    default_base_url: str = ""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        self.spec = spec
        self.clients = clients
        self.name = spec.name
        self.base_url = (resolve(spec.base_url) or self.default_base_url).rstrip("/")
        self.extra_headers = {name: resolve(value) or "" for name, value in spec.headers}

    # what subclasses provide
    def url(self, request: UpstreamRequest) -> str:
        raise NotImplementedError

    def auth_headers(self, request: UpstreamRequest) -> dict[str, str]:
        raise NotImplementedError

    def payload(self, request: UpstreamRequest) -> dict[str, Any]:
        raise NotImplementedError

    def reply(self, request: UpstreamRequest, data: Any) -> bytes:
        """A whole answer (decoded JSON) -> the OpenAI JSON body; sets ``ctx.usage``."""
        raise NotImplementedError

    def translator(self, request: UpstreamRequest) -> StreamTranslator:
        raise NotImplementedError

    # the exchange
    def request_headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
            **self.extra_headers,
            **self.auth_headers(request),
        }
        return apply_header_overrides(headers, request.ctx)

    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        """One attempt; the timeouts are the OpenAI adapter's. A stream is returned once its
        first translated chunk is ready, so an error the provider reports before any answer
        (an ``error`` event straight away) is still a failure the route can fail over on."""
        name = self.name
        if not self.base_url:
            raise UpstreamFailure("connect", f"{name} has no base_url (is its variable set?)")
        url = self.url(request)
        data = orjson.dumps(self.payload(request))
        headers = self.request_headers(request)
        import aiohttp

        session = self.clients.session(name, self.spec.max_connections)
        timeouts = request.timeouts
        if request.stream:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.total
            )
            limit: float | None = min(timeouts.total, timeouts.first_token or timeouts.total)
        else:
            timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
            limit = None
        response: aiohttp.ClientResponse | None = None
        translator: StreamTranslator | None = None
        splitter = EventSplitter()
        first: list[bytes] = []
        ended = False
        try:
            async with asyncio.timeout(limit):
                response = await session.post(url, data=data, headers=headers, timeout=timeout)
                reply_headers = {
                    k.lower(): v
                    for k, v in response.headers.items()
                    if k.lower() not in HOP_HEADERS
                }
                if response.status >= 400:
                    raise status_failure(response.status, reply_headers, await response.read())
                if not request.stream:
                    body = await response.read()
                    out = self._reply(request, body)
                    reply_headers["content-type"] = "application/json"
                    return UpstreamReply(response.status, reply_headers, out)
                translator = self.translator(request)
                while not first:
                    chunk = await response.content.readany()
                    if not chunk:
                        ended = True
                        first = self._end(translator, splitter)
                        break
                    first, failure = self._feed(translator, splitter, chunk)
                    if failure is not None:  # nothing was sent yet: fail, and fail over
                        raise failure
        except TimeoutError:
            raise timeout_failure(request, response, limit, name) from None
        except aiohttp.ClientError as error:
            raise connection_failure(error, response, name) from None
        except UpstreamFailure:
            if response is not None:  # an error status (read whole) or an early error event
                response.release() if response.status >= 400 else response.close()
            raise
        assert translator is not None
        reply_headers["content-type"] = "text/event-stream"
        if ended:
            response.release()
            return UpstreamStream(response.status, reply_headers, _replay(first), _closer(response))
        return UpstreamStream(
            response.status,
            reply_headers,
            self._stream(first, response, translator, splitter),
            _closer(response),
        )

    def _reply(self, request: UpstreamRequest, body: bytes) -> bytes:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise unreadable(self.name, "an answer that is not JSON") from None
        try:
            return self.reply(request, data)
        except UpstreamFailure:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise unreadable(self.name, f"an answer of an unexpected shape ({error!r})") from None

    def _feed(
        self, translator: StreamTranslator, splitter: EventSplitter, chunk: bytes
    ) -> tuple[list[bytes], UpstreamFailure | None]:
        """The OpenAI events for one network chunk and, if an event in it failed, the failure
        (the events translated before it are still returned, to be sent first)."""
        out: list[bytes] = []
        for raw in splitter.feed(chunk):
            try:
                out += self._event(translator, raw)
            except UpstreamFailure as failure:
                return out, failure
        return out, None

    def _end(self, translator: StreamTranslator, splitter: EventSplitter) -> list[bytes]:
        out: list[bytes] = []
        rest = splitter.rest()
        if rest.strip():
            out += self._event(translator, rest)
        return out + translator.close()

    def _event(self, translator: StreamTranslator, raw: bytes) -> list[bytes]:
        name, data = sse_event(raw)
        if data is None or not data.strip():
            return []
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise unreadable(self.name, "a stream event that is not JSON") from None
        if not isinstance(decoded, dict):
            raise unreadable(self.name, "a stream event that is not a JSON object")
        try:
            return translator.feed(decoded, name)
        except UpstreamFailure:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise unreadable(
                self.name, f"a stream event of an unexpected shape ({error!r})"
            ) from None

    async def _stream(
        self,
        first: list[bytes],
        response: aiohttp.ClientResponse,
        translator: StreamTranslator,
        splitter: EventSplitter,
    ) -> AsyncIterator[bytes]:
        """Translate event by event as chunks arrive; nothing is held back beyond the end of
        the event being read. A failure after the first chunk raises (the gateway turns it
        into an SSE error event), and a stream cut short never gets a ``[DONE]``."""
        source = _chunks(b"", response, self.name)
        try:
            yield b"".join(first)
            async for chunk in source:
                if not chunk:
                    continue
                out, failure = self._feed(translator, splitter, chunk)
                if out:
                    yield b"".join(out)
                if failure is not None:
                    raise failure
            out = self._end(translator, splitter)
            if out:
                yield b"".join(out)
        finally:
            await source.aclose()

    async def aclose(self) -> None:
        return None


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    yield b"".join(chunks)


def apply_header_overrides(headers: dict[str, str], ctx: RequestContext) -> dict[str, str]:
    """Headers set (or removed, with None) by the `headers` module win, whatever their case."""
    for name, value in ctx.upstream_headers.items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
    return headers
