"""The built-in mock provider: a deterministic fake LLM for demos and tests, no network."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
import struct
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from ..core.generation import ProviderSpec
from ..core.sse import event
from ..core.usage import Usage
from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.value_types import Duration, Number, Text
from ..exceptions import UpstreamFailure
from .base import Adapter, UpstreamReply, UpstreamRequest, UpstreamStream

if TYPE_CHECKING:
    from .clients import HttpClients

KIND = ProviderKind(
    name="mock",
    doc="A deterministic, offline fake LLM: echoes the prompt with realistic usage; streams.",
    protocol="mock",
    base_url=None,
    needs_base_url=False,
    attributes=frozen_map(
        {
            "latency": AttributeSpec(
                "latency",
                "Delay before the answer (or its first chunk).",
                "latency 50ms",
                positional=(Duration(maximum="10m"),),
            ),
            "chunk_delay": AttributeSpec(
                "chunk_delay",
                "Delay between streamed chunks.",
                "chunk_delay 20ms",
                positional=(Duration(maximum="1m"),),
            ),
            "reply": AttributeSpec(
                "reply",
                "A fixed answer instead of the echo.",
                'reply "Hello from the mock."',
                positional=(Text(),),
            ),
            "fail_rate": AttributeSpec(
                "fail_rate",
                "Fraction of requests answered with a 500, for failover drills.",
                "fail_rate 0.1",
                positional=(Number(0, 1),),
            ),
        }
    ),
)


_TOKEN = re.compile(r"\w+|[^\w\s]")
EMBEDDING_DIMENSIONS = 16


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class MockAdapter(Adapter):
    """Answers like an OpenAI-compatible server would, without a network."""

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
        options = spec.options
        self.latency = float(options.get("latency") or 0)
        self.chunk_delay = float(options.get("chunk_delay") or 0)
        self.reply = options.get("reply")
        self.fail_rate = Decimal(str(options.get("fail_rate") or 0))
        self._counter = itertools.count(1)

    def _should_fail(self) -> bool:
        if not self.fail_rate:
            return False
        n = next(self._counter)  # exactly fail_rate of requests fail, evenly spread
        return math.floor(n * self.fail_rate) > math.floor((n - 1) * self.fail_rate)

    async def send(self, request: UpstreamRequest) -> UpstreamReply | UpstreamStream:
        if self.latency:
            await self._wait(request)
        if self._should_fail():
            failure = orjson.dumps(
                {"error": {"message": "mock failure (fail_rate)", "type": "server_error"}}
            )
            raise UpstreamFailure("status", "mock failure (fail_rate)", status=500, body=failure)
        body = request.ctx.body
        headers = {"content-type": "application/json", "x-mock": "1"}
        if request.endpoint == "embeddings":
            vectors, tokens = self._embeddings(request, body)
            return UpstreamReply(200, headers, vectors, Usage(prompt_tokens=tokens, known=True))
        prompt, answer = self._exchange(request.endpoint, body)
        usage = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(answer)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        counted = Usage.from_openai(usage)
        ident = "mock-" + hashlib.sha256(request.ctx.raw_body).hexdigest()[:24]
        if request.stream:
            request.on_usage(counted)  # known before the first chunk: the answer is made up
            chunks = self._stream(request, ident, answer, usage)
            return UpstreamStream(200, {"content-type": "text/event-stream"}, chunks, _noop)
        return UpstreamReply(200, headers, self._complete(request, ident, answer, usage), counted)

    async def _wait(self, request: UpstreamRequest) -> None:
        """The simulated latency, under the same timeouts a real upstream would face."""
        timeouts = request.timeouts
        limit = timeouts.total
        if request.stream and timeouts.first_token:
            limit = min(limit, timeouts.first_token)
        if self.latency <= limit:
            await asyncio.sleep(self.latency)
            return
        await asyncio.sleep(limit)
        what = "sent no first token" if request.stream else "did not answer"
        raise UpstreamFailure(
            "timeout", f"{self.spec.name} {what} within {limit:g}s (mock latency)"
        )

    def _exchange(self, endpoint: str, body: dict[str, Any]) -> tuple[str, str]:
        if endpoint == "completions":
            prompt = body.get("prompt", "")
            prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            last = prompt
        else:
            messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            prompt = " ".join(_text_of(m.get("content")) for m in messages)
            users = [m for m in messages if m.get("role") == "user"]
            last = _text_of(users[-1].get("content")) if users else ""
        answer = self.reply or f"Mock reply to: {last}".strip()
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and limit > 0:
            answer = " ".join(answer.split(" ")[:limit])
        return prompt, answer

    def _complete(
        self, request: UpstreamRequest, ident: str, answer: str, usage: dict[str, int]
    ) -> bytes:
        created = int(time.time())
        if request.endpoint == "completions":
            choice: dict[str, Any] = {
                "index": 0,
                "text": answer,
                "finish_reason": "stop",
                "logprobs": None,
            }
            obj = "text_completion"
        else:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
            obj = "chat.completion"
        return orjson.dumps(
            {
                "id": ident,
                "object": obj,
                "created": created,
                "model": request.model,
                "choices": [choice],
                "usage": usage,
                "system_fingerprint": "mock",
            }
        )

    async def _stream(
        self, request: UpstreamRequest, ident: str, answer: str, usage: dict[str, int]
    ) -> AsyncIterator[bytes]:
        created = int(time.time())
        chat = request.endpoint != "completions"
        base = {
            "id": ident,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": request.model,
            "system_fingerprint": "mock",
        }
        options = request.ctx.body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(delta: dict[str, Any] | str, finish: str | None) -> bytes:
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": delta,
                    "finish_reason": finish,
                    "logprobs": None,
                }
            else:
                choice = {"index": 0, "text": delta, "finish_reason": finish, "logprobs": None}
            return event(orjson.dumps({**base, "choices": [choice]}))

        if chat:
            yield chunk({"role": "assistant", "content": ""}, None)
        words = answer.split(" ")
        idle_limit = request.timeouts.total  # a stream's timeout bounds each wait between chunks
        for index, word in enumerate(words):
            if self.chunk_delay > idle_limit:
                await asyncio.sleep(idle_limit)
                raise UpstreamFailure(
                    "timeout", f"{self.spec.name} stopped sending in the middle of the stream"
                )
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            piece = word if index == 0 else " " + word
            yield chunk({"content": piece} if chat else piece, None)
        yield chunk({} if chat else "", "stop")
        if with_usage:
            yield event(orjson.dumps({**base, "choices": [], "usage": usage}))
        yield event(b"[DONE]")

    def _embeddings(self, request: UpstreamRequest, body: dict[str, Any]) -> tuple[bytes, int]:
        """The answer, and how many prompt tokens it counts."""
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        tokens = 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += count_tokens(text)
            digest = hashlib.sha256(text.encode()).digest()
            raw = struct.unpack(f">{EMBEDDING_DIMENSIONS}H", digest[: EMBEDDING_DIMENSIONS * 2])
            vector = [round(v / 65535 * 2 - 1, 6) for v in raw]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = orjson.dumps(
            {"object": "list", "data": data, "model": request.model, "usage": usage}
        )
        return answer, tokens


async def _noop() -> None:
    return None
