"""``model_alias``: map the model a caller asks for to the model that is served."""

from __future__ import annotations

from ..dsl.schema import ModuleSpec, Param, frozen_map
from ..dsl.types import Pairs

SPEC = ModuleSpec(
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
)
