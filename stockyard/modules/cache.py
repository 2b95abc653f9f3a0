"""``cache``: exact-match response cache, scoped per project, replayed for streams too."""

from __future__ import annotations

from ..dsl.schema import SERVES, ModuleSpec, Param, frozen_map
from ..dsl.types import Boolean, Duration, Integer

SPEC = ModuleSpec(
    name="cache",
    doc="Answer repeated identical requests from the cache (x-stockyard-cache: hit).",
    params=frozen_map(
        {
            "ttl": Param(
                Duration("1s", "365d"),
                "How long an answer stays fresh.",
                default=3600.0,
                example="10m",
            ),
            "max_entries": Param(
                Integer(1, 100_000_000),
                "Entries kept; the least recently used go first.",
                default=10_000,
                example="50000",
            ),
            "streams": Param(
                Boolean(),
                "Also cache streamed answers (replayed as SSE).",
                default=True,
                example="false",
            ),
        }
    ),
    roles=frozenset({SERVES}),
)
