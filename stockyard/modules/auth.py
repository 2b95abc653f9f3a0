"""``auth``: callers must present a gateway key (``sk-sy-…``); the key names their project."""

from __future__ import annotations

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import AUTHENTICATES, REJECTS, Param, frozen_map
from ..dsl.value_types import Text
from ..exceptions import AuthenticationFailed, PermissionDenied
from ..keys import PREFIX
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params


def create(params: Params, services: ModuleServices) -> Module:
    header = str(params["header"]).lower()
    ring = services.keys

    async def auth(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        key = ctx.headers.get(header, "").strip()
        in_authorization = False
        if not key:
            value = ctx.headers.get("authorization", "")
            if value[:7].lower() == "bearer " and value[7:].strip().startswith(PREFIX):
                key, in_authorization = value[7:].strip(), True
        if not key:
            raise AuthenticationFailed(
                f"a gateway key is required: send `Authorization: Bearer {PREFIX}…` or `{header}`",
                code="missing_api_key",
            )
        record = ring.find(key)
        if record is None:
            raise AuthenticationFailed("invalid gateway key", code="invalid_api_key")
        state = record.state()
        if state != "active":
            raise AuthenticationFailed(f"this gateway key is {state}", code=f"key_{state}")
        refusal = record.allows(ctx.route.name, ctx.model)
        if refusal:
            raise PermissionDenied(refusal, code="key_not_allowed")
        ctx.project = record.project
        ctx.key_id = record.id
        if in_authorization:
            ctx.authorization_consumed = True  # never pass a gateway key on to a provider
        return await call_next(ctx)

    return auth


SPEC = ModuleDefinition(
    name="auth",
    doc="Require a gateway key; the key's project scopes spend, caps, limits and the cache.",
    params=frozen_map(
        {
            "header": Param(
                Text(),
                "Request header that carries the key, besides `Authorization: Bearer`.",
                default="x-stockyard-key",
                example='"x-api-key"',
            ),
        }
    ),
    roles=frozenset({AUTHENTICATES, REJECTS}),
    create=create,
)
