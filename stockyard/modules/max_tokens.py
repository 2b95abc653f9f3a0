"""``max_tokens``: bound the completion length a caller may ask for.

- Above ``limit``: ``action: clamp`` (the default) lowers the request's value to the limit;
  ``action: reject`` answers 400 ``max_tokens_exceeded``.
- Not set: the module sets it to ``limit``, so that no request runs unbounded (and the
  ``cost_cap`` estimate that follows sees the bound). For chat completions the field the caller
  used is kept: ``max_completion_tokens`` (which OpenAI's reasoning models require) or
  ``max_tokens``; when neither is set, ``max_completion_tokens`` is used for OpenAI's reasoning
  families (``o1``, ``o3``, ``o4``, ``gpt-5``), which refuse ``max_tokens``, and ``max_tokens``
  for everything else (every OpenAI-compatible server and every adapter understands it).
  Text completions use ``max_tokens``. Embeddings have no completion and pass untouched.

The body is replaced through ``ctx.set_body`` (a copy: the bytes the caller sent stay as
recorded), so the adapter re-serialises it. A value that is not a positive whole number is
left for request validation to refuse.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import REJECTS, Param, frozen_map
from ..dsl.value_types import Choice, Integer
from ..exceptions import InvalidRequest
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

# Models (after a provider/ prefix) that take `max_completion_tokens` and refuse `max_tokens`.
_REASONING = re.compile(r"(?:.*/)?(?:o1|o3|o4|gpt-5)(?:[-.:@].*)?\Z", re.IGNORECASE)
FIELDS = ("max_completion_tokens", "max_tokens")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def create(params: Params, services: ModuleServices) -> Module:
    limit = int(params["limit"])
    reject = params["action"] == "reject"

    async def max_tokens(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        path = ctx.path
        if path.endswith("/embeddings") or not (
            path.endswith("/chat/completions") or path.endswith("/completions")
        ):
            return await call_next(ctx)
        body = ctx.body
        chat = path.endswith("/chat/completions")
        present = [f for f in (FIELDS if chat else ("max_tokens",)) if body.get(f) is not None]
        if not present:
            field = "max_tokens"
            if chat and _REASONING.match(ctx.model):
                field = "max_completion_tokens"
            ctx.set_body({**body, field: limit})
            ctx.notes["max_tokens"] = {"set": limit, "field": field}
            return await call_next(ctx)
        over = [f for f in present if _whole(body[f]) and body[f] > limit]
        if over:
            field = over[0]
            if reject:
                ctx.blocked_by = "max_tokens"
                ctx.notes["max_tokens"] = {"asked": body[field], "limit": limit, "field": field}
                raise InvalidRequest(
                    f"`{field}` is {body[field]}, above this route's limit of {limit}; "
                    f"ask for at most {limit}",
                    code="max_tokens_exceeded",
                    param=field,
                )
            ctx.set_body({**body, **dict.fromkeys(over, limit)})
            ctx.notes["max_tokens"] = {"clamped_from": body[field], "to": limit, "field": field}
        return await call_next(ctx)

    return max_tokens


SPEC = ModuleDefinition(
    name="max_tokens",
    doc="Clamp `max_tokens` to a limit (or reject above it); set it when the caller did not.",
    params=frozen_map(
        {
            "limit": Param(
                Integer(1, 10_000_000), "The largest completion allowed.", example="4096"
            ),
            "action": Param(
                Choice("clamp", "reject", what="action"),
                "Above the limit.",
                default="clamp",
                example="reject",
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    rejects_when=lambda params: params.get("action") == "reject",
    create=create,
)
