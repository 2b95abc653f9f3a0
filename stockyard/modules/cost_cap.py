"""``cost_cap``: enforce the route's ``cap`` — reserve worst-case cost at admission, settle after."""

from __future__ import annotations

from ..dsl.schema import REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import Choice, Integer

SPEC = ModuleSpec(
    name="cost_cap",
    doc="Refuse requests (429 budget_exceeded) that could take spend past the route's `cap`.",
    params=frozen_map(
        {
            "unpriced": Param(
                Choice("reject", "allow", what="policy"),
                "What to do with a model that has no price.",
                default="reject",
                example="allow",
            ),
            "default_max_tokens": Param(
                Integer(1, 10_000_000),
                "Output tokens assumed when a request sets no max_tokens.",
                default=4096,
                example="1024",
            ),
        }
    ),
    roles=frozenset({REJECTS}),
)
