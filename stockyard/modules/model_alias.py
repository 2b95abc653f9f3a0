"""``model_alias``: map the model a caller asks for to the model that is served.

``model_alias(map: ["fast" -> "gpt-4o-mini"])`` sends a request for ``fast`` upstream as
``gpt-4o-mini``: the body's ``model`` is rewritten (``ctx.set_body``) and ``ctx.model`` is the
served name while the rest of the chain runs, so later modules (``cost_cap``'s price, the cache
key) and the dispatcher see what is really sent; a hop's own ``model:`` rewrite still wins.
When the chain returns, ``ctx.model`` is set back to what the caller asked for, so the trace
and the ledger show ``model: fast`` and ``served_model: gpt-4o-mini``.

Routing happens before modules: the route's ``models`` must match the alias (``"fast"``), not
the served name. Names match exactly; unmapped names pass untouched.
"""

from __future__ import annotations

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import Param, frozen_map
from ..dsl.value_types import Pairs
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params


def create(params: Params, services: ModuleServices) -> Module:
    mapping: dict[str, str] = {str(k): str(v) for k, v in params["map"]}

    async def model_alias(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        asked = ctx.model
        served = mapping.get(asked)
        if served is None or served == asked:
            return await call_next(ctx)
        ctx.notes["model_alias"] = {"from": asked, "to": served}
        ctx.set_body({**ctx.body, "model": served})
        ctx.model = served
        try:
            return await call_next(ctx)
        finally:
            ctx.model = asked  # records show what the caller asked for (and served_model)

    return model_alias


SPEC = ModuleDefinition(
    name="model_alias",
    doc="Rewrite requested model names, e.g. a stable alias to a dated model.",
    params=frozen_map(
        {
            "map": Param(
                Pairs(),
                "Requested name -> served name.",
                example='["fast" -> "gpt-4o-mini", "smart" -> "gpt-4o"]',
            ),
        }
    ),
    renames_models=lambda params: {str(k): str(v) for k, v in params["map"]},
    create=create,
)
