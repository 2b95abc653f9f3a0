"""Google Gemini's generateContent API, translated to and from the OpenAI chat shape."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from ..core.context import RequestContext
from ..core.usage import Usage
from ..dsl.schema import ProviderKind
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

KIND = ProviderKind(
    name="gemini",
    doc="Google Gemini (generateContent / streamGenerateContent).",
    protocol="gemini",
    base_url="https://generativelanguage.googleapis.com/v1beta",
    key_env="GEMINI_API_KEY",
)

# Gemini's finishReason -> OpenAI's finish_reason (STOP becomes tool_calls when the answer
# calls functions: Gemini has no finish reason of its own for that).
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}

# Gemini 3 signs the function calls it makes and wants each signature back with the call in
# the next turn. The OpenAI shape has no place for it, so it travels inside the tool call id
# (URL-safe base64, so the id stays [A-Za-z0-9_-]) and is restored from there.
SIGNATURE_MARK = "__sig_"
# Google's documented stand-in for a call that carries no signature (made by another model,
# or by the caller): it lets Gemini 3 accept the history instead of refusing it with a 400.
NO_SIGNATURE = "skip_thought_signature_validator"


def finish_reason(reason: Any, called: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called and mapped == "stop" else mapped


def usage_to_openai(meta: Any) -> dict[str, Any]:
    """Gemini's promptTokenCount already includes the cached tokens; thoughts are counted
    apart from the candidates, whereas OpenAI's completion_tokens include reasoning."""
    meta = meta if isinstance(meta, dict) else {}

    def count(name: str) -> int:
        value = meta.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    thoughts = count("thoughtsTokenCount")
    completion_tokens = count("candidatesTokenCount") + thoughts
    return openai_usage(prompt, completion_tokens, count("cachedContentTokenCount"), thoughts)


def call_id(function_call: dict[str, Any], signature: Any) -> str:
    ident = function_call.get("id") or new_id("call_")
    if isinstance(signature, str) and signature:
        try:
            raw = base64.b64decode(signature + "=" * (-len(signature) % 4), altchars=b"-_")
            signature = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        except (binascii.Error, ValueError):
            return str(ident)
        return f"{ident}{SIGNATURE_MARK}{signature}"
    return str(ident)


def signature_of(ident: Any) -> str | None:
    """The thought signature carried by a tool call id, as standard base64; None if none."""
    if not isinstance(ident, str) or SIGNATURE_MARK not in ident:
        return None
    encoded = ident.split(SIGNATURE_MARK, 1)[1]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode()


def _parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for part in parts:
        if part["type"] == "text":
            out.append({"text": part["text"]})
        elif "url" in part:
            mime = mimetypes.guess_type(part["url"].split("?", 1)[0])[0] or "image/jpeg"
            out.append({"fileData": {"mimeType": mime, "fileUri": part["url"]}})
        else:
            out.append({"inlineData": {"mimeType": part["mime"], "data": part["data"]}})
    return out


def _response_value(text: str) -> dict[str, Any]:
    """A tool result as the object functionResponse.response must be."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat-completions request as a Gemini generateContent request (the model and
    the streaming choice go in the URL)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for position, message in enumerate(body.get("messages") or []):
        where = f"messages[{position}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = text_of(content, where)
            if text:
                system.append(text)
        elif role == "user":
            add("user", _parts(content_parts(content, where)))
        elif role == "assistant":
            parts = _parts(content_parts(content, where))
            signed = False
            calls = []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                name = function.get("name")
                if not isinstance(name, str):
                    raise unsupported(f"{where}: a tool call needs `function.name`")
                if isinstance(call.get("id"), str):
                    names[call["id"]] = name
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": name,
                        "args": tool_arguments(function.get("arguments"), where),
                    }
                }
                signature = signature_of(call.get("id"))
                if signature:
                    part["thoughtSignature"] = signature
                    signed = True
                calls.append(part)
            if calls and not signed:
                calls[0]["thoughtSignature"] = NO_SIGNATURE
            add("model", parts + calls)
        elif role == "tool":
            ident = message.get("tool_call_id")
            name = names.get(ident) if isinstance(ident, str) else None
            name = name or message.get("name")
            if not isinstance(name, str):
                raise unsupported(
                    f"{where}: the tool result's `tool_call_id` matches no earlier tool call"
                )
            response = _response_value(text_of(content, where))
            add("user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise unsupported(f"{where}: messages with role `{role}` cannot be translated")

    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    limit = max_tokens_of(body)
    if limit:
        config["maxOutputTokens"] = limit
    for field, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            config[name] = value
    if isinstance(body.get("seed"), int) and not isinstance(body.get("seed"), bool):
        config["seed"] = body["seed"]
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        config["candidateCount"] = n
    stops = stop_sequences(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                config["responseJsonSchema"] = schema
        elif kind not in (None, "text"):
            raise unsupported(f"`response_format` {kind} cannot be translated for Gemini")
    if config:
        out["generationConfig"] = config
    tools = function_tools(body)
    if tools:
        declarations = []
        for tool in tools:
            declaration: dict[str, Any] = {"name": tool["name"]}
            if tool["description"]:
                declaration["description"] = tool["description"]
            if tool["parameters"]:
                declaration["parametersJsonSchema"] = tool["parameters"]
            declarations.append(declaration)
        out["tools"] = [{"functionDeclarations": declarations}]
        picked = tool_choice_of(body)
        calling: dict[str, Any] | None = None
        if picked == "none":
            calling = {"mode": "NONE"}
        elif picked == "required":
            calling = {"mode": "ANY"}
        elif isinstance(picked, tuple):
            calling = {"mode": "ANY", "allowedFunctionNames": [picked[1]]}
        elif picked == "auto":
            calling = {"mode": "AUTO"}
        if calling is not None:
            out["toolConfig"] = {"functionCallingConfig": calling}
    return out


def _candidate(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The visible text and the tool calls of a candidate (thought summaries are left out)."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            function_call = part["functionCall"]
            ident = call_id(function_call, part.get("thoughtSignature"))
            calls.append(
                tool_call(ident, function_call.get("name") or "", function_call.get("args") or {})
            )
    return "".join(text), calls


def from_gemini(data: dict[str, Any], model: str) -> tuple[bytes, dict[str, Any]]:
    """A GenerateContentResponse as an OpenAI chat.completion body, and its OpenAI usage."""
    choices = []
    for position, candidate in enumerate(data.get("candidates") or []):
        text, calls = _candidate(candidate)
        finish = finish_reason(candidate.get("finishReason"), bool(calls))
        choices.append(choice(candidate.get("index", position), text, calls, finish))
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append(choice(0, "", [], "content_filter"))
    usage = usage_to_openai(data.get("usageMetadata"))
    ident = data.get("responseId") or new_id("chatcmpl-")
    return completion(ident, data.get("modelVersion") or model, choices, usage), usage


class GeminiStream(StreamTranslator):
    """streamGenerateContent (alt=sse) events -> OpenAI chunks, one event at a time."""

    def __init__(
        self, ctx: RequestContext, model: str, name: str, on_usage: Callable[[Usage], None]
    ) -> None:
        super().__init__(ctx, model, name, on_usage)
        self.usage: dict[str, Any] | None = None
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate -> tool calls so far

    def feed(self, data: dict[str, Any], name: str | None) -> list[bytes]:
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            message = error.get("message") or error.get("status") or "error"
            raise UpstreamFailure("status", str(message), status=status, body=orjson.dumps(data))
        if self.writer is None:
            self.writer = ChunkWriter(
                data.get("responseId") or new_id("chatcmpl-"),
                data.get("modelVersion") or self.model,
            )
        writer = self.writer
        if isinstance(data.get("usageMetadata"), dict):
            self.usage = usage_to_openai(data["usageMetadata"])
            self.on_usage(Usage.from_openai(self.usage))
        out: list[bytes] = []
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            candidates = [{"index": 0, "finishReason": "PROHIBITED_CONTENT"}]
        for position, candidate in enumerate(candidates):
            index = candidate.get("index", position)
            if index not in self.started:
                self.started.add(index)
                out.append(writer.chunk({"role": "assistant", "content": ""}, index=index))
            text, calls = _candidate(candidate)
            if text:
                out.append(writer.chunk({"content": text}, index=index))
            for call in calls:
                position_of = self.calls.get(index, 0)
                self.calls[index] = position_of + 1
                out.append(
                    writer.chunk({"tool_calls": [{"index": position_of, **call}]}, index=index)
                )
            reason = candidate.get("finishReason")
            if reason and index not in self.finished:
                self.finished.add(index)
                finish = finish_reason(reason, bool(self.calls.get(index)))
                out.append(writer.chunk({}, finish, index=index))
        return out

    def close(self) -> list[bytes]:
        if not self.finished or self.started - self.finished:
            raise UpstreamFailure("connect", f"{self.name} ended the stream before finishing")
        assert self.writer is not None
        out = []
        if self.with_usage:
            out.append(self.writer.usage(self.usage or openai_usage(0, 0)))
        out.append(self.writer.done())
        return out


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise unsupported("Gemini embeds text: `input` must be a string or a list of strings")
    return items


def to_gemini_embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    dimensions = body.get("dimensions")
    requests = []
    for text in _embedding_inputs(body):
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0:
            item["outputDimensionality"] = dimensions
        requests.append(item)
    return {"requests": requests}


def from_gemini_embeddings(
    data: dict[str, Any], model: str, encoding: Any
) -> tuple[bytes, dict[str, Any] | None]:
    items = []
    for index, embedding in enumerate(data["embeddings"]):
        values = [float(v) for v in embedding["values"]]
        vector: Any = values
        if encoding == "base64":  # little-endian float32, as OpenAI sends it
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        items.append({"object": "embedding", "index": index, "embedding": vector})
    meta = data.get("usageMetadata")
    usage = None
    if isinstance(meta, dict) and isinstance(meta.get("promptTokenCount"), int):
        usage = {
            "prompt_tokens": meta["promptTokenCount"],
            "total_tokens": meta["promptTokenCount"],
        }
    shown = usage or {"prompt_tokens": 0, "total_tokens": 0}
    body = {"object": "list", "data": items, "model": model, "usage": shown}
    return orjson.dumps(body), usage


class GeminiAdapter(TranslatingAdapter):
    """Gemini's generateContent / streamGenerateContent (and batchEmbedContents for
    /v1/embeddings) behind the OpenAI shape."""

    default_base_url = KIND.base_url or ""

    def url(self, request: UpstreamRequest) -> str:
        model = quote(request.model.removeprefix("models/"), safe="")
        if request.endpoint == "embeddings":
            return f"{self.base_url}/models/{model}:batchEmbedContents"
        if request.stream:
            return f"{self.base_url}/models/{model}:streamGenerateContent?alt=sse"
        return f"{self.base_url}/models/{model}:generateContent"

    def auth_headers(self, request: UpstreamRequest) -> dict[str, str]:
        return {"x-goog-api-key": request.api_key} if request.api_key else {}

    def payload(self, request: UpstreamRequest) -> dict[str, Any]:
        body = request.ctx.body
        if request.endpoint == "embeddings":
            return to_gemini_embeddings(body, request.model.removeprefix("models/"))
        if request.endpoint != "chat/completions":
            raise unsupported(
                f"provider `{self.name}` (Gemini) serves /v1/chat/completions and "
                f"/v1/embeddings, not /v1/{request.endpoint}"
            )
        return to_gemini(body)

    def translate_answer(
        self, request: UpstreamRequest, data: Any
    ) -> tuple[bytes, dict[str, Any] | None]:
        if request.endpoint == "embeddings":
            encoding = request.ctx.body.get("encoding_format")
            return from_gemini_embeddings(data, request.model, encoding)
        return from_gemini(data, request.model)

    def translator(self, request: UpstreamRequest) -> GeminiStream:
        return GeminiStream(request.ctx, request.model, self.name, request.on_usage)
