"""``trace``: record one row per request — attempts, tokens, cost, latency — streams included."""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..core.context import Phase, RequestContext
from ..core.env import resolve
from ..core.generation import PASSTHROUGH
from ..core.response import GatewayResponse
from ..dsl.schema import RECORDS, Param, frozen_map
from ..dsl.value_types import Boolean, Size
from ..store.money import to_pico
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

# Credentials that must never be stored, even inside a recorded body.
_TOKENS = re.compile(rb"\b(?:sk|pk|rk|sy)-[A-Za-z0-9_\-]{8,}|\bAIza[0-9A-Za-z_\-]{20,}")
# A JSON string value (escaped quotes included) of a field whose name says it is a credential:
# "api_key", "x-api-key", "apiKey", "Authorization", "client_secret", "access_token", ...
_SECRET_FIELDS = re.compile(
    rb'("(?:[\w-]*[_-])?(?:api[_-]?key|authorization|password|secret|token)"\s*:\s*)'
    rb'"(?:[^"\\]|\\.)*"',
    re.I,
)


def _redact(body: bytes | None, limit: int, secrets: tuple[str, ...]) -> str | None:
    """Remove known secrets and credential-shaped text, then cap at ``limit`` bytes (redacting
    first, so a secret cut in half by the cap cannot slip through)."""
    if body is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 4:
            body = body.replace(secret.encode(), b"[redacted]")
            escaped = orjson.dumps(secret)[1:-1]  # as it appears inside a JSON string
            if escaped != secret.encode():
                body = body.replace(escaped, b"[redacted]")
    body = _SECRET_FIELDS.sub(rb'\1"[redacted]"', _TOKENS.sub(b"[redacted]", body))
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…[truncated]" if len(body) > limit else "")


_provider_keys: tuple[Any, tuple[str, ...]] = (None, ())  # (generation, its resolved keys)


def _secrets(ctx: RequestContext) -> tuple[str, ...]:
    """The caller's key and every provider key of the serving generation: an upstream may echo
    a key back in an answer, and a recorded body must not carry it into the database."""
    global _provider_keys
    generation = ctx.generation
    if _provider_keys[0] is not generation:
        keys = (
            resolve(spec.api_key)
            for spec in generation.providers.values()
            if spec.api_key is not None and spec.api_key != PASSTHROUGH
        )
        _provider_keys = (generation, tuple(dict.fromkeys(k for k in keys if k)))
    caller = ctx.caller_key
    return (caller, *_provider_keys[1]) if caller else _provider_keys[1]


def trace_row(ctx: RequestContext, bodies: bool, limit: int) -> tuple[Any, ...]:
    notes = ctx.notes
    if ctx.blocked_by is not None or ctx.disconnected:
        notes = dict(notes)
        if ctx.blocked_by is not None:
            notes["blocked_by"] = ctx.blocked_by
        if ctx.disconnected:
            notes["disconnected"] = True
    secrets = _secrets(ctx) if bodies else ()
    return (
        ctx.id,
        ctx.started_at,
        ctx.route.name,
        ctx.project,
        ctx.key_id,
        ctx.path,
        ctx.model,
        ctx.served_model,
        ctx.provider,
        ctx.status or 0,
        ctx.error,
        int(ctx.stream),
        ctx.cache,
        ctx.usage.prompt_tokens,
        ctx.usage.completion_tokens,
        ctx.usage.cached_tokens,
        ctx.usage.reasoning_tokens,
        to_pico(ctx.cost) if ctx.cost is not None else None,
        int(ctx.cost is not None),
        round(ctx.duration_ms(), 3),
        round(ctx.first_token_ms, 3) if ctx.first_token_ms is not None else None,
        round(ctx.overhead_ms, 3) if ctx.overhead_ms is not None else None,
        orjson.dumps([a.to_json() for a in ctx.attempts]).decode(),
        orjson.dumps(notes, default=str).decode(),
        _redact(ctx.raw_body, limit, secrets) if bodies else None,
        _redact(ctx.response_body, limit, secrets) if bodies else None,
    )


def create(params: Params, services: ModuleServices) -> Module:
    bodies = bool(params["bodies"])
    limit = int(params["max_body"])
    store = services.store

    async def record(ctx: RequestContext) -> None:
        await store.add_trace(trace_row(ctx, bodies, limit))

    async def trace(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        ctx.on_end(Phase.TRACE, record)
        if bodies:
            ctx.keep_bodies = True
        return await call_next(ctx)

    return trace


SPEC = ModuleDefinition(
    name="trace",
    doc="Record a trace of every request (GET /api/lookout/traces).",
    params=frozen_map(
        {
            "bodies": Param(
                Boolean(),
                "Also keep request and response bodies (secrets redacted).",
                default=False,
                example="true",
            ),
            "max_body": Param(
                Size(), "Bodies are cut at this size.", default=65536, example="16KiB"
            ),
        }
    ),
    roles=frozenset({RECORDS}),
    create=create,
)
