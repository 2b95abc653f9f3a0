"""``headers``: add, replace or remove headers on the request sent upstream."""

from __future__ import annotations

from ..core.context import RequestContext
from ..core.env import resolve
from ..core.response import GatewayResponse
from ..dsl.schema import Param, frozen_map
from ..dsl.value_types import ListOf, Pairs, Text
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

# Headers a pipeline may not set: they carry credentials or framing the adapter owns.
PROTECTED = frozenset(
    {"authorization", "api-key", "x-api-key", "content-length", "host", "content-type"}
)


def create(params: Params, services: ModuleServices) -> Module:
    edits: dict[str, str | None] = {}
    for name in params["remove"]:
        edits[name.lower()] = None
    for name, value in params["set"]:
        edits[name] = resolve(value) or ""  # env() is read when the generation goes live
    edits = {k: v for k, v in edits.items() if k.lower() not in PROTECTED}

    async def headers(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        ctx.upstream_headers.update(edits)
        return await call_next(ctx)

    return headers


SPEC = ModuleDefinition(
    name="headers",
    doc="Set or remove upstream request headers.",
    params=frozen_map(
        {
            "set": Param(
                Pairs(Text(), Text(allow_env=True)),
                "Headers to set.",
                default=(),
                example='["OpenAI-Organization" -> env("OPENAI_ORG")]',
            ),
            "remove": Param(ListOf(Text()), "Headers to drop.", default=(), example='["x-debug"]'),
        }
    ),
    create=create,
)
