"""``redact``: replace PII and secrets in prompts with placeholders before they leave."""

from __future__ import annotations

from ..dsl.schema import ModuleSpec, Param, frozen_map
from ..dsl.types import Boolean, Choice, ListOf

KINDS = ("email", "phone", "card", "api_key", "private_key", "ip")

SPEC = ModuleSpec(
    name="redact",
    doc="Replace emails, phone numbers, card numbers, keys and the like with placeholders.",
    params=frozen_map(
        {
            "kinds": Param(
                ListOf(Choice(*KINDS, what="kind of data"), min_items=1),
                "What to redact.",
                default=KINDS,
                example="[email, card]",
            ),
            "restore": Param(
                Boolean(),
                "Put the originals back into the answer (per request).",
                default=False,
                example="true",
            ),
        }
    ),
)
