"""``max_tokens``: bound the completion length a caller may ask for."""

from __future__ import annotations

from ..dsl.schema import REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import Choice, Integer

SPEC = ModuleSpec(
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
)
