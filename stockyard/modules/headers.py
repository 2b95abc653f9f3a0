"""``headers``: add, replace or remove headers on the request sent upstream."""

from __future__ import annotations

from ..dsl.schema import ModuleSpec, Param, frozen_map
from ..dsl.types import ListOf, Pairs, Text

SPEC = ModuleSpec(
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
)
