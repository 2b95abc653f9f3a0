"""The Anthropic Messages API, translated to and from the OpenAI chat shape."""

from __future__ import annotations

from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.types import Integer, Text

KIND = ProviderKind(
    name="anthropic",
    doc="Anthropic's Messages API.",
    protocol="anthropic",
    base_url="https://api.anthropic.com/v1",
    key_env="ANTHROPIC_API_KEY",
    attributes=frozen_map(
        {
            "version": AttributeSpec(
                "version",
                "The anthropic-version header.",
                'version "2023-06-01"',
                positional=(Text(),),
            ),
            "max_tokens": AttributeSpec(
                "max_tokens",
                "max_tokens sent when the caller sets none (Anthropic requires it).",
                "max_tokens 4096",
                positional=(Integer(1, 1_000_000),),
            ),
        }
    ),
)
