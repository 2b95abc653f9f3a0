"""Fake Anthropic, Gemini and Azure OpenAI servers on loopback, for end-to-end tests of the
translating adapters.

Each speaks its provider's wire protocol the way the real API does (paths, headers, request
validation, answers, SSE events, error bodies), records what it received, and is scripted
like :class:`tests.harness.Upstream` (one :class:`Say` per request, then ``default``).
They check what the real APIs check, so a mistranslated request fails loudly with a 400 in
the provider's own error shape.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from aiohttp import web

from .harness import Behaviour, Gateway, Received, Upstream, sse_frame, write_sse


@dataclass
class Say(Behaviour):
    """One scripted answer. Adds to :class:`Behaviour` (status, body, delay, chunk_delay,
    fail_after_chunks, reply, echo, headers):"""

    tool: tuple[str, dict[str, Any]] | None = None  # answer with a call of this tool
    stop: str | None = None  # the provider's own stop/finish reason to report
    usage: dict[str, Any] | None = None  # the provider's own usage object
    error_after: int | None = None  # stream: an error event after this many text chunks
    error_type: str = "overloaded_error"  # Anthropic error type for `error_after`
    preamble: str | None = None  # text before the tool call


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Invalid(Exception):
    """The request breaks a rule the real API enforces (answered with a 400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class FakeServer(Upstream):
    """Shared plumbing: recording, the script, and the query strings received."""

    def __init__(self, name: str) -> None:
        self.queries: list[dict[str, str]] = []
        super().__init__(name)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.queries = []

    @property
    def last(self) -> Received:
        with self._lock:
            return self.received[-1]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        with self._lock:
            self.received.append(
                Received(request.path, dict(request.headers), body, time.monotonic())
            )
            self.queries.append(dict(request.query))
        return body

    def _reply_text(self, behaviour: Behaviour, model: str, last_user: str) -> str:
        if behaviour.echo:
            return last_user
        return behaviour.reply or f"{self.name} answers {model}"

    async def _prepare_sse(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", **behaviour.headers}
        )
        await response.prepare(request)
        return response

    def _count_chunk(self) -> None:
        with self._lock:
            self.chunks_sent += 1
            now = time.monotonic()
            self.last_chunk_at = now
            if self.first_chunk_at is None:
                self.first_chunk_at = now


# --- Anthropic ---------------------------------------------------------------------------------

ANTHROPIC_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
}
BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking"}


def check_anthropic(headers: Any, body: dict[str, Any]) -> None:
    if not headers.get("x-api-key"):
        raise Invalid("x-api-key header is required", 401)
    if not headers.get("anthropic-version"):
        raise Invalid("anthropic-version: header is required")
    extra = set(body) - ANTHROPIC_FIELDS
    if extra:
        raise Invalid(f"{sorted(extra)[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise Invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Field required")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise Invalid("temperature: Input should be less than or equal to 1")
    system = body.get("system")
    if system is not None and not (
        isinstance(system, str)
        or (isinstance(system, list) and all(b.get("type") == "text" for b in system))
    ):
        raise Invalid("system: Input should be a valid string or a list of text blocks")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    previous_tool_uses: set[str] = set()
    previous_role = None
    for position, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(
                f"messages.{position}.role: Input should be 'user' or 'assistant'"
                + (" (use the top-level `system` parameter)" if role == "system" else "")
            )
        if role == previous_role:
            raise Invalid(f"messages.{position}: roles must alternate between user and assistant")
        previous_role = role
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                raise Invalid(f"messages.{position}: text content blocks must be non-empty")
            blocks: list[dict[str, Any]] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            raise Invalid(f"messages.{position}.content: a string or a non-empty list")
        tool_uses: set[str] = set()
        for index, block in enumerate(blocks):
            kind = block.get("type")
            where = f"messages.{position}.content.{index}"
            if kind not in BLOCK_TYPES:
                raise Invalid(f"{where}.type: unknown block type {kind!r}")
            if kind == "text" and not block.get("text"):
                raise Invalid(f"{where}: text content blocks must be non-empty")
            if kind == "tool_use":
                if role != "assistant" or not isinstance(block.get("input"), dict):
                    raise Invalid(f"{where}: tool_use blocks belong to the assistant, with input")
                tool_uses.add(block["id"])
            if kind == "tool_result":
                if role != "user":
                    raise Invalid(f"{where}: tool_result blocks belong to the user")
                if block.get("tool_use_id") not in previous_tool_uses:
                    raise Invalid(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
            if kind == "image":
                source = block.get("source") or {}
                if source.get("type") not in ("base64", "url"):
                    raise Invalid(f"{where}.source: base64 or url")
        previous_tool_uses = tool_uses
    for tool in body.get("tools") or []:
        if not isinstance(tool.get("input_schema"), dict) or "name" not in tool:
            raise Invalid("tools: each tool needs name and input_schema")


class FakeAnthropic(FakeServer):
    """POST /v1/messages, as Anthropic's Messages API answers it."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        behaviour = self.next_behaviour()
        if behaviour.delay and not await self._sleep_unless_gone(request, behaviour.delay):
            return web.Response(status=499)
        if behaviour.status >= 400:
            return self._error(
                behaviour.status, f"{self.name} says {behaviour.status}", behaviour.headers
            )
        if request.path != "/v1/messages":
            return self._error(404, f"Not found: {request.path}")
        try:
            check_anthropic(request.headers, body)
        except Invalid as problem:
            return self._error(problem.status, problem.message)
        say = behaviour if isinstance(behaviour, Say) else Say()
        model = body["model"]
        last = body["messages"][-1]["content"]
        last_text = (
            last
            if isinstance(last, str)
            else " ".join(b.get("text", "") for b in last if b.get("type") == "text")
        )
        text = self._reply_text(behaviour, model, last_text)
        if say.tool and say.preamble is None:
            text = ""
        elif say.tool:
            text = say.preamble or ""
        stop = say.stop or ("tool_use" if say.tool else "end_turn")
        words = text.split(" ") if text else []
        usage = {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": max(1, len(words)) + (10 if say.tool else 0),
            **(say.usage or {}),
        }
        ident = "msg_" + f"{len(self.received):04d}fake"
        tool_id = f"toolu_{len(self.received):04d}fake"
        if not body.get("stream"):
            content: list[dict[str, Any]] = []
            if text:
                content.append({"type": "text", "text": text})
            if say.tool:
                content.append(
                    {"type": "tool_use", "id": tool_id, "name": say.tool[0], "input": say.tool[1]}
                )
            return web.json_response(
                {
                    "id": ident,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
                headers={"request-id": "req_fake", **behaviour.headers},
            )
        return await self._messages_stream(request, say, ident, model, words, stop, usage, tool_id)

    def _error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return web.json_response(
            {"type": "error", "error": {"type": kind, "message": message}},
            status=status,
            headers=headers or {},
        )

    async def _messages_stream(
        self,
        request: web.Request,
        say: Say,
        ident: str,
        model: str,
        words: list[str],
        stop: str,
        usage: dict[str, Any],
        tool_id: str,
    ) -> web.StreamResponse:
        response = await self._prepare_sse(request, say)

        async def send(name: str, data: dict[str, Any]) -> None:
            payload = {"type": name, **data}
            event = sse_frame(say, ("event", name), ("data", json.dumps(payload)))
            await write_sse(response, say, event)

        start_usage = {**usage, "output_tokens": 1}
        try:
            await send(
                "message_start",
                {
                    "message": {
                        "id": ident,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    }
                },
            )
            if say.error_after == 0:
                await self._error_event(send, say)
                return response
            index = 0
            if words:
                await send(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
                await send("ping", {})
                for position, word in enumerate(words):
                    if say.fail_after_chunks is not None and position >= say.fail_after_chunks:
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    if say.error_after is not None and position >= say.error_after:
                        await self._error_event(send, say)
                        return response
                    if say.chunk_delay:
                        await asyncio.sleep(say.chunk_delay)
                    piece = word if position == 0 else " " + word
                    await send(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                    )
                    self._count_chunk()
                await send("content_block_stop", {"index": 0})
                index = 1
            if say.tool:
                await send(
                    "content_block_start",
                    {
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": tool_id,
                            "name": say.tool[0],
                            "input": {},
                        },
                    },
                )
                arguments = json.dumps(say.tool[1])
                cut = max(1, len(arguments) // 2)
                for piece in ("", arguments[:cut], arguments[cut:]):
                    await send(
                        "content_block_delta",
                        {
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                await send("content_block_stop", {"index": index})
            await send(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            await send("message_stop", {})
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            with self._lock:
                self.cancelled += 1
            raise
        return response

    @staticmethod
    async def _error_event(send: Any, say: Say) -> None:
        message = "Overloaded" if say.error_type == "overloaded_error" else say.error_type
        await send("error", {"error": {"type": say.error_type, "message": message}})


# --- Gemini ------------------------------------------------------------------------------------

GEMINI_FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
}
PART_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
# a thought signature as Gemini 3 sends it: standard base64 with + and / in it
SIGNATURE = base64.b64encode(bytes(range(250, 256)) + b"\xfb\xff\xfe signed" * 3).decode()


def check_gemini(model: str, headers: Any, body: dict[str, Any]) -> None:
    if not headers.get("x-goog-api-key"):
        raise Invalid("Method doesn't allow unregistered callers (missing API key).", 403)
    extra = set(body) - GEMINI_FIELDS
    if extra:
        raise Invalid(f'Invalid JSON payload received. Unknown name "{sorted(extra)[0]}"')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    system = body.get("systemInstruction")
    if system is not None and not all("text" in p for p in system.get("parts") or [None]):
        raise Invalid("systemInstruction: parts must hold text")
    previous_calls: list[str] = []
    for position, content in enumerate(contents):
        role = content.get("role")
        if role not in ("user", "model"):
            raise Invalid(f"Please use a valid role: user, model. (contents[{position}]: {role})")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(f"contents[{position}].parts must not be empty")
        calls = []
        for index, part in enumerate(parts):
            data = set(part) & PART_FIELDS
            if len(data) != 1 or set(part) - PART_FIELDS - {"thoughtSignature", "thought"}:
                raise Invalid(f"contents[{position}].parts[{index}]: one kind of data per part")
            if "functionCall" in part:
                if role != "model":
                    raise Invalid("functionCall parts belong to the model")
                calls.append(part["functionCall"]["name"])
                if "gemini-3" in model and not any("thoughtSignature" in p for p in parts):
                    raise Invalid(
                        f"Function call is missing a thought_signature in functionCall parts. "
                        f"Additional data, function call `{part['functionCall']['name']}`, "
                        f"position {position + 1}."
                    )
            if "functionResponse" in part:
                name = part["functionResponse"].get("name")
                if name not in previous_calls:
                    raise Invalid(f"functionResponse {name!r} answers no function call")
                if not isinstance(part["functionResponse"].get("response"), dict):
                    raise Invalid("functionResponse.response must be an object")
        previous_calls = calls
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise Invalid("parameters and parametersJsonSchema are mutually exclusive")


class FakeGemini(FakeServer):
    """POST /v1/models/{model}:generateContent | :streamGenerateContent?alt=sse |
    :batchEmbedContents, as the Gemini API (generativelanguage) answers them."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        behaviour = self.next_behaviour()
        if behaviour.delay and not await self._sleep_unless_gone(request, behaviour.delay):
            return web.Response(status=499)
        if behaviour.status >= 400:
            return self._error(behaviour.status, f"{self.name} says {behaviour.status}")
        tail = request.path.removeprefix("/v1/")
        if not tail.startswith("models/") or ":" not in tail:
            return self._error(404, f"Not found: {request.path}")
        model, method = tail.removeprefix("models/").split(":", 1)
        if method == "batchEmbedContents":
            return self._embed(request, model, body)
        if method not in ("generateContent", "streamGenerateContent"):
            return self._error(404, f"unknown method {method}")
        try:
            check_gemini(model, request.headers, body)
        except Invalid as problem:
            return self._error(problem.status, problem.message)
        say = behaviour if isinstance(behaviour, Say) else Say()
        last_parts = body["contents"][-1]["parts"]
        last_text = " ".join(p.get("text", "") for p in last_parts if "text" in p)
        text = self._reply_text(behaviour, model, last_text)
        if say.tool:
            text = say.preamble or ""
        words = text.split(" ") if text else []
        usage = {
            "promptTokenCount": 21,
            "candidatesTokenCount": max(1, len(words)),
            "totalTokenCount": 21 + max(1, len(words)),
            **(say.usage or {}),
        }
        finish = say.stop or "STOP"
        call_part: dict[str, Any] | None = None
        if say.tool:
            call_part = {"functionCall": {"name": say.tool[0], "args": say.tool[1]}}
            if "gemini-3" in model:
                call_part["thoughtSignature"] = SIGNATURE
        if method == "generateContent":
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            if say.usage and say.usage.get("thoughtsTokenCount"):
                parts.insert(0, {"text": "(thinking about it)", "thought": True})
            if call_part:
                parts.append(call_part)
            candidate: dict[str, Any] = {"index": 0, "finishReason": finish}
            if parts:
                candidate["content"] = {"role": "model", "parts": parts}
            return web.json_response(
                {
                    "candidates": [candidate],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": f"resp-{len(self.received)}",
                },
                headers=behaviour.headers,
            )
        if request.query.get("alt") != "sse":
            return self._error(400, "this fake streams with alt=sse only")
        return await self._sse(request, say, model, words, call_part, finish, usage)

    def _error(self, status: int, message: str) -> web.Response:
        return web.json_response(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
                }
            },
            status=status,
        )

    async def _sse(
        self,
        request: web.Request,
        say: Say,
        model: str,
        words: list[str],
        call_part: dict[str, Any] | None,
        finish: str,
        usage: dict[str, Any],
    ) -> web.StreamResponse:
        response = await self._prepare_sse(request, say)
        ident = f"resp-{len(self.received)}"

        async def send(payload: dict[str, Any]) -> None:
            # Gemini frames its events with CRLF
            await response.write(b"data: " + json.dumps(payload).encode() + b"\r\n\r\n")

        def chunk(parts: list[dict[str, Any]], done: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if done:
                candidate["finishReason"] = finish
            partial = dict(usage)
            if not done:
                partial.pop("candidatesTokenCount", None)
                partial.pop("thoughtsTokenCount", None)
                partial["totalTokenCount"] = partial["promptTokenCount"]
            return {
                "candidates": [candidate],
                "usageMetadata": partial,
                "modelVersion": model,
                "responseId": ident,
            }

        try:
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            for position, piece in enumerate(pieces):
                if say.fail_after_chunks is not None and position >= say.fail_after_chunks:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if say.error_after is not None and position >= say.error_after:
                    await send(
                        {
                            "error": {
                                "code": 503,
                                "message": "The model is overloaded.",
                                "status": "UNAVAILABLE",
                            }
                        }
                    )
                    return response
                if say.chunk_delay:
                    await asyncio.sleep(say.chunk_delay)
                last = position == len(pieces) - 1 and call_part is None
                await send(chunk([{"text": piece}], last))
                self._count_chunk()
            if call_part is not None:
                await send(chunk([call_part], True))
            elif not pieces:
                await send(chunk([{"text": ""}], True))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            with self._lock:
                self.cancelled += 1
            raise
        return response

    def _embed(self, request: web.Request, model: str, body: dict[str, Any]) -> web.Response:
        if not request.headers.get("x-goog-api-key"):
            return self._error(403, "Method doesn't allow unregistered callers")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self._error(400, "requests is required")
        embeddings = []
        for item in requests:
            if item.get("model") != f"models/{model}":
                return self._error(
                    400, "Model in each request must match the model of the batch request"
                )
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            size = item.get("outputDimensionality") or 4
            embeddings.append({"values": [round(len(text) / (i + 1), 3) for i in range(size)]})
        return web.json_response({"embeddings": embeddings})


# --- Azure OpenAI ------------------------------------------------------------------------------


class FakeAzure(FakeServer):
    """An Azure OpenAI resource: /openai/deployments/{deployment}/{operation}?api-version=…
    with an ``api-key`` header; the payloads and answers are OpenAI's (the harness upstream's).
    ``url`` is the resource endpoint (no path)."""

    deployments_seen: list[str]

    def __init__(self, name: str, deployments: tuple[str, ...] = ()) -> None:
        self.known = set(deployments)
        self.deployments_seen = []
        super().__init__(name)
        self.url = f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.deployments_seen = []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/{tail:.*}", self._azure)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        deployment = request.match_info["deployment"]
        with self._lock:
            self.deployments_seen.append(deployment)
        if "api-version" not in request.query:
            await self._record(request)
            return web.json_response(
                {"error": {"code": "404", "message": "Resource not found"}}, status=404
            )
        if not request.headers.get("api-key"):
            await self._record(request)
            return web.json_response(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong "
                        "API endpoint.",
                    }
                },
                status=401,
            )
        if self.known and deployment not in self.known:
            await self._record(request)
            return web.json_response(
                {
                    "error": {
                        "code": "DeploymentNotFound",
                        "message": f"The API deployment {deployment} does not exist.",
                    }
                },
                status=404,
            )
        with self._lock:
            self.queries.append(dict(request.query))
        return await Upstream._handle(self, request)


def sse_events(text: str) -> list[str]:
    """The events of a raw SSE body, separators normalised."""
    return [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]


def data_of(events: list[str]) -> list[Any]:
    """The JSON of each ``data:`` event (``"[DONE]"`` kept as a string)."""
    out: list[Any] = []
    for item in events:
        for line in item.split("\n"):
            if line.startswith("data:"):
                payload = line[5:].strip()
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def trace_id(response: Any) -> str:
    """The gateway's trace id of a response (raw SDK response, or httpx)."""
    value = response.headers.get("x-stockyard-trace-id")
    assert value, f"no trace id header in {dict(response.headers)}"
    return str(value)


HELLO = [{"role": "user", "content": "hello"}]


def chat_through(gw: Gateway, default_model: str, **kwargs: Any) -> tuple[Any, str]:
    """A chat completion through the gateway with the official SDK: (the parsed answer, its
    trace id). ``default_model`` and a "hello" message unless given."""
    kwargs.setdefault("model", default_model)
    kwargs.setdefault("messages", HELLO)
    raw = gw.client().chat.completions.with_raw_response.create(**kwargs)
    return raw.parse(), trace_id(raw)


def stream_through(gw: Gateway, default_model: str, **body: Any) -> tuple[list[Any], str, int]:
    """A streamed chat completion posted raw: (the JSON of each event, trace id, status)."""
    body = {"model": default_model, "messages": HELLO, "stream": True, **body}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=20) as response:
        text = response.read().decode()
        return (
            data_of(sse_events(text)),
            response.headers["x-stockyard-trace-id"],
            response.status_code,
        )


def expected_cost(
    price: tuple[Any, Any, Any], prompt: int, completion: int, cached: int = 0
) -> Decimal:
    """Dollars for (input, output, cached) prices per 1M tokens, computed independently of
    stockyard.pricing; ``prompt`` includes ``cached``."""
    inp, out, cache = (Decimal(str(v)) for v in price)
    return ((prompt - cached) * inp + cached * cache + completion * out) / Decimal(1_000_000)
