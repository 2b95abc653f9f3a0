"""The OpenAI wire protocol (chat completions, completions, embeddings, models)."""

from __future__ import annotations

from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.types import Text

KIND = ProviderKind(
    name="openai",
    doc="OpenAI, or any server that speaks the OpenAI API (set `base_url`).",
    protocol="openai",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    attributes=frozen_map(
        {
            "organization": AttributeSpec(
                "organization",
                "Sent as the OpenAI-Organization header.",
                'organization "org-…"',
                positional=(Text(allow_env=True),),
            ),
            "project": AttributeSpec(
                "project",
                "Sent as the OpenAI-Project header.",
                'project "proj_…"',
                positional=(Text(allow_env=True),),
            ),
        }
    ),
)
