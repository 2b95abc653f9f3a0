"""``redact``: replace PII and secrets in prompts with placeholders before they leave."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..core.sse import DONE, EventSplitter, event, event_data
from ..dsl.schema import Param, frozen_map
from ..dsl.value_types import Boolean, Choice, ListOf
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

KINDS = ("email", "phone", "card", "api_key", "private_key", "ip")

# Order matters: longer, more specific shapes first so a key is not half-taken as a phone.
_PATTERNS: dict[str, re.Pattern[str]] = {
    "private_key": re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    ),
    "api_key": re.compile(
        r"\b(?:sk-(?:proj-|ant-|sy-)?[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}"
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
        r"|glpat-[A-Za-z0-9_\-]{20,}|hf_[A-Za-z0-9]{30,})"
    ),
    "email": re.compile(
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"
    ),
    "card": re.compile(r"\b(?:\d[ \-]?){12,18}\d\b"),
    "ip": re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),
    "phone": re.compile(
        r"(?<![\w+])(?<!\d[ .\-])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .\-]?\d{3,4}[ .\-]?\d{3,4}"
        r"(?!\w)(?![ .\-]\d)"
    ),
}
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|API_KEY|PRIVATE_KEY|IP)_\d+\]")
_LONGEST_PLACEHOLDER = len("[PRIVATE_KEY_99999]")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class Redactor:
    """Replaces findings with numbered placeholders and remembers them — for one request only."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = [k for k in _PATTERNS if k in kinds]
        self.originals: dict[str, str] = {}
        self._numbers: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}

    def _placeholder(self, kind: str, original: str) -> str:
        known = self._numbers.get((kind, original))
        if known:
            return known
        self.counts[kind] = self.counts.get(kind, 0) + 1
        label = f"[{kind.upper()}_{self.counts[kind]}]"
        self._numbers[(kind, original)] = label
        self.originals[label] = original
        return label

    def redact(self, text: str) -> str:
        for kind in self.kinds:
            pattern = _PATTERNS[kind]

            def replace(match: re.Match[str], kind: str = kind) -> str:
                found = match.group(0)
                if kind == "card":
                    digits = re.sub(r"\D", "", found)
                    if not 13 <= len(digits) <= 19 or not luhn(digits):
                        return found
                if kind == "phone" and len(re.sub(r"\D", "", found)) < 7:
                    return found
                return self._placeholder(kind, found)

            text = pattern.sub(replace, text)
        return text

    def restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.originals.get(m.group(0), m.group(0)), text)


def _map_texts(body: dict[str, Any], change: Callable[[str], str]) -> None:
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = change(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = change(part["text"])
    for field in ("prompt", "input"):
        value = body.get(field)
        if isinstance(value, str):
            body[field] = change(value)
        elif isinstance(value, list):
            body[field] = [change(v) if isinstance(v, str) else v for v in value]


def _restore_answer(body: bytes, redactor: Redactor) -> bytes:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = redactor.restore(message["content"])
        if isinstance(choice, dict) and isinstance(choice.get("text"), str):
            choice["text"] = redactor.restore(choice["text"])
    return orjson.dumps(data)


async def _restore_stream(stream: AsyncIterator[bytes], redactor: Redactor) -> AsyncIterator[bytes]:
    """Restore placeholders in streamed deltas; a placeholder may be split across chunks, so a
    possible beginning of one (``[`` …) is held back until it completes or cannot."""
    splitter = EventSplitter()
    carry = ""
    async for chunk in stream:
        out = []
        for raw in splitter.feed(chunk):
            data = event_data(raw)
            if not data or data == DONE:
                out.append(raw)
                continue
            try:
                payload = orjson.loads(data)
                choice = payload["choices"][0]
                delta = choice.get("delta", {})
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
                out.append(raw)
                continue
            text = delta.get("content") if isinstance(delta, dict) else None
            finished = choice.get("finish_reason") is not None
            if not isinstance(text, str) and not (finished and carry):
                out.append(raw)
                continue
            text = carry + (text or "")
            carry = ""
            if not finished:
                cut = text.rfind("[")
                if cut != -1 and "]" not in text[cut:] and len(text) - cut < _LONGEST_PLACEHOLDER:
                    text, carry = text[:cut], text[cut:]
            delta["content"] = redactor.restore(text)
            out.append(event(orjson.dumps(payload)))
        if out:
            yield b"".join(out)
    rest = splitter.rest()
    if rest.strip() or carry:
        yield rest


def create(params: Params, services: ModuleServices) -> Module:
    kinds = tuple(params["kinds"])
    restore = bool(params["restore"])

    async def redact(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        redactor = Redactor(kinds)
        body = copy.deepcopy(ctx.body)
        _map_texts(body, redactor.redact)
        if redactor.counts:
            ctx.set_body(body)
            ctx.notes["redacted"] = dict(redactor.counts)
        response: GatewayResponse = await call_next(ctx)
        if not restore or not redactor.originals:
            return response
        if response.stream is not None:
            response.stream = _restore_stream(response.stream, redactor)
        elif response.status == 200:
            response.body = _restore_answer(response.body, redactor)
        return response

    return redact


SPEC = ModuleDefinition(
    name="redact",
    doc="Replace emails, phone numbers, card numbers, keys and the like with placeholders.",
    params=frozen_map(
        {
            "kinds": Param(
                ListOf(Choice(*KINDS, what="kind of data"), min_items=1),
                "What to redact.",
                default=KINDS,
                example="[email, card]",
            ),
            "restore": Param(
                Boolean(),
                "Put the originals back into the answer (per request).",
                default=False,
                example="true",
            ),
        }
    ),
    create=create,
)
