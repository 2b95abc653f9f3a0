"""``prompt_guard``: detect prompt-injection patterns and block, flag or log them."""

from __future__ import annotations

from ..dsl.schema import REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import Choice, ListOf, Text

SPEC = ModuleSpec(
    name="prompt_guard",
    doc="Match prompts against injection patterns; `block` rejects, `flag` marks, `log` records.",
    params=frozen_map(
        {
            "action": Param(
                Choice("block", "flag", "log", what="action"),
                "What to do on a match.",
                default="block",
                example="flag",
            ),
            "sensitivity": Param(
                Choice("low", "medium", "high", what="sensitivity"),
                "How many pattern families apply.",
                default="medium",
                example="high",
            ),
            "patterns": Param(
                ListOf(Text()),
                "Extra regular expressions (case-insensitive).",
                default=(),
                example='["reveal the system prompt"]',
            ),
        }
    ),
    roles=frozenset({REJECTS}),
)
