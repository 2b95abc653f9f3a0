"""``trace``: record one row per request — attempts, tokens, cost, latency — streams included."""

from __future__ import annotations

from ..dsl.schema import RECORDS, ModuleSpec, Param, frozen_map
from ..dsl.types import Boolean, Size

SPEC = ModuleSpec(
    name="trace",
    doc="Record a trace of every request (GET /api/lookout/traces).",
    params=frozen_map(
        {
            "bodies": Param(
                Boolean(),
                "Also keep request and response bodies (secrets redacted).",
                default=False,
                example="true",
            ),
            "max_body": Param(
                Size(), "Bodies are cut at this size.", default=65536, example="16KiB"
            ),
        }
    ),
    roles=frozenset({RECORDS}),
)
