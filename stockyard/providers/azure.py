"""Azure OpenAI: OpenAI payloads on per-deployment URLs with an ``api-version`` and ``api-key``."""

from __future__ import annotations

from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.types import Pairs, Text

KIND = ProviderKind(
    name="azure",
    doc="Azure OpenAI Service; `base_url` is the resource endpoint.",
    protocol="azure",
    base_url=None,
    key_env="AZURE_OPENAI_API_KEY",
    attributes=frozen_map(
        {
            "api_version": AttributeSpec(
                "api_version",
                "The Azure OpenAI API version.",
                'api_version "2024-10-21"',
                positional=(Text(),),
                required=True,
            ),
            "deployments": AttributeSpec(
                "deployments",
                "Model name -> deployment name (default: the model name).",
                'deployments ["gpt-4o" -> "my-gpt4o"]',
                positional=(Pairs(),),
            ),
        }
    ),
)
