"""The built-in mock provider: a deterministic fake LLM for demos and tests, no network."""

from __future__ import annotations

from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.types import Duration, Number, Text

KIND = ProviderKind(
    name="mock",
    doc="A deterministic, offline fake LLM: echoes the prompt with realistic usage; streams.",
    protocol="mock",
    base_url=None,
    needs_api_key=False,
    attributes=frozen_map(
        {
            "latency": AttributeSpec(
                "latency",
                "Delay before the answer (or its first chunk).",
                "latency 50ms",
                positional=(Duration(maximum="10m"),),
            ),
            "chunk_delay": AttributeSpec(
                "chunk_delay",
                "Delay between streamed chunks.",
                "chunk_delay 20ms",
                positional=(Duration(maximum="1m"),),
            ),
            "reply": AttributeSpec(
                "reply",
                "A fixed answer instead of the echo.",
                'reply "Hello from the mock."',
                positional=(Text(),),
            ),
            "fail_rate": AttributeSpec(
                "fail_rate",
                "Fraction of requests answered with a 500, for failover drills.",
                "fail_rate 0.1",
                positional=(Number(0, 1),),
            ),
        }
    ),
)
