"""The provider-kind registry: one file per wire protocol, presets for OpenAI-compatible APIs.

Each adapter file declares ``KIND`` (a :class:`~stockyard.dsl.schema.ProviderKind`); the
checker reads kinds and their extra attributes from :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..dsl.schema import ProviderKind
from . import anthropic, azure, gemini, mock, openai, presets
from .base import Adapter

# protocol -> adapter class: Adapter(spec, clients)
ADAPTERS: Mapping[str, type[Adapter]] = MappingProxyType(
    {
        "openai": openai.OpenAIAdapter,
        "azure": azure.AzureAdapter,
        "anthropic": anthropic.AnthropicAdapter,
        "gemini": gemini.GeminiAdapter,
        "mock": mock.MockAdapter,
    }
)

KINDS: Mapping[str, ProviderKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            openai.KIND,
            azure.KIND,
            anthropic.KIND,
            gemini.KIND,
            mock.KIND,
            *presets.KINDS,
        )
    }
)
