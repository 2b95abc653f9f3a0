"""``auth``: callers must present a gateway key (``sk-sy-…``); the key names their project."""

from __future__ import annotations

from ..dsl.schema import AUTHENTICATES, REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import Text

SPEC = ModuleSpec(
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
)
