"""``prompt_guard``: detect prompt-injection patterns and block, flag or log them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import REJECTS, Param, frozen_map
from ..dsl.value_types import INVALID_VALUE, Choice, ListOf, Text, ValueProblem
from ..exceptions import InvalidRequest
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

# Pattern families, from blatant to suspicious. `low` uses the first, `medium` the first two,
# `high` all three: higher sensitivity catches more and flags more innocent text.
_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("override", (
        r"\b(?:ignore|disregard|forget|skip)\b.{0,40}\b(?:previous|prior|above|earlier|preceding|all)\b.{0,40}\b(?:instructions?|prompts?|rules|directions|guidelines)\b",
        r"\byou are now\b.{0,40}\b(?:DAN|jailbroken|unrestricted|unfiltered|in developer mode)\b",
        r"\bdo anything now\b",
        r"\b(?:reveal|print|show|output|repeat|leak)\b.{0,30}\b(?:your|the)\b.{0,20}\b(?:system prompt|hidden (?:instructions|prompt)|initial (?:instructions|prompt))\b",
    )),
    ("roleplay", (
        r"\b(?:pretend|act|behave)\b.{0,30}\b(?:no|without|free of)\b.{0,20}\b(?:restrictions|filters|limits|rules|guidelines)\b",
        r"\bdeveloper mode\b",
        r"\b(?:override|bypass|disable)\b.{0,30}\b(?:safety|content policy|guardrails|filters|restrictions)\b",
        r"\bjailbreak",
    )),
    ("markers", (
        r"</?\s*(?:system|sys|instructions?)\s*>",
        r"^\s*(?:system|assistant)\s*:",
        r"\bsystem prompt\b",
        r"\bnew instructions\b",
        r"\[\s*INST\s*\]|<<\s*SYS\s*>>",
    )),
)  # fmt: skip
_LEVELS = {"low": 1, "medium": 2, "high": 3}


def _validate(params: Mapping[str, Any]) -> list[ValueProblem]:
    problems = []
    for pattern in params.get("patterns") or ():
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append(
                ValueProblem(
                    INVALID_VALUE,
                    f"pattern {pattern!r} is not a valid regular expression: {error}",
                    None,
                )
            )
    return problems


def compile_patterns(sensitivity: str, extra: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    compiled = []
    for family, patterns in _FAMILIES[: _LEVELS[sensitivity]]:
        compiled += [
            (family, re.compile(p, re.IGNORECASE | re.MULTILINE | re.DOTALL)) for p in patterns
        ]
    compiled += [("custom", re.compile(p, re.IGNORECASE)) for p in extra]
    return compiled


def caller_text(body: Mapping[str, Any]) -> str:
    """What the caller wrote: user and tool messages (the system prompt is the app's own)."""
    parts: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") in (
            "system",
            "developer",
            "assistant",
        ):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        parts += [p for p in prompt if isinstance(p, str)]
    return "\n".join(parts)


def create(params: Params, services: ModuleServices) -> Module:
    patterns = compile_patterns(params["sensitivity"], tuple(params["patterns"]))
    action = params["action"]

    async def prompt_guard(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        text = caller_text(ctx.body)
        hit = (
            next(((family, p) for family, p in patterns if p.search(text)), None) if text else None
        )
        if hit is not None:
            family, pattern = hit
            ctx.notes["prompt_guard"] = {
                "action": action,
                "family": family,
                "pattern": pattern.pattern[:80],
            }
            if action == "block":
                ctx.blocked_by = "prompt_guard"
                raise InvalidRequest(
                    "the prompt was blocked by the gateway's prompt-injection guard",
                    code="prompt_blocked",
                )
            if action == "flag":
                ctx.response_headers["x-stockyard-flagged"] = "prompt_injection"
        return await call_next(ctx)

    return prompt_guard


SPEC = ModuleDefinition(
    name="prompt_guard",
    doc="Match prompts against injection patterns; `block` rejects, `flag` marks, `log` records.",
    params=frozen_map(
        {
            "action": Param(
                Choice("block", "flag", "log", what="action"),
                "What to do on a match.",
                default="block",
                example="flag",
            ),
            "sensitivity": Param(
                Choice("low", "medium", "high", what="sensitivity"),
                "How many pattern families apply.",
                default="medium",
                example="high",
            ),
            "patterns": Param(
                ListOf(Text()),
                "Extra regular expressions (case-insensitive).",
                default=(),
                example='["reveal the system prompt"]',
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    rejects_when=lambda params: params.get("action") == "block",
    validate=_validate,
    create=create,
)
