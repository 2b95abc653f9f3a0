"""``audit``: append every request to the SHA-256 hash-chained audit ledger."""

from __future__ import annotations

from typing import Any

from ..core.context import Phase, RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import RECORDS, frozen_map
from ..store.money import dollars_text, to_pico
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params


def request_event(ctx: RequestContext) -> dict[str, Any]:
    """What the ledger keeps about a request: who, what, outcome — never bodies or keys."""
    return {
        "trace_id": ctx.id,
        "project": ctx.project,
        "key_id": ctx.key_id,
        "model": ctx.model,
        "served_model": ctx.served_model,
        "provider": ctx.provider,
        "status": ctx.status,
        "stream": ctx.stream,
        "cache": ctx.cache,
        "prompt_tokens": ctx.usage.prompt_tokens,
        "completion_tokens": ctx.usage.completion_tokens,
        # the same exact text as the traces and spend APIs ("0.00000585", never "5.850E-6")
        "cost": dollars_text(to_pico(ctx.cost)) if ctx.cost is not None else None,
        "error": ctx.error,
        "client_ip": ctx.client_ip,
    }


def create(params: Params, services: ModuleServices) -> Module:
    store = services.store

    async def record(ctx: RequestContext) -> None:
        actor = f"key:{ctx.key_id}" if ctx.key_id else f"project:{ctx.project}"
        await store.add_event(
            "request", actor, f"route:{ctx.route.name}", f"POST {ctx.path}", request_event(ctx)
        )

    async def audit(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        ctx.on_end(Phase.AUDIT, record)
        return await call_next(ctx)

    return audit


SPEC = ModuleDefinition(
    name="audit",
    doc="Append an event per request to the tamper-evident ledger (GET /api/brand/ledger).",
    params=frozen_map({}),
    roles=frozenset({RECORDS}),
    create=create,
)
