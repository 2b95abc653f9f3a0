"""``audit``: append every request to the SHA-256 hash-chained audit ledger."""

from __future__ import annotations

from ..dsl.schema import RECORDS, ModuleSpec, frozen_map

SPEC = ModuleSpec(
    name="audit",
    doc="Append an event per request to the tamper-evident ledger (GET /api/brand/ledger).",
    params=frozen_map({}),
    roles=frozenset({RECORDS}),
)
