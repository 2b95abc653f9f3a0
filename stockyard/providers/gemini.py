"""Google Gemini's generateContent API, translated to and from the OpenAI chat shape."""

from __future__ import annotations

from ..dsl.schema import ProviderKind

KIND = ProviderKind(
    name="gemini",
    doc="Google Gemini (generateContent / streamGenerateContent).",
    protocol="gemini",
    base_url="https://generativelanguage.googleapis.com/v1beta",
    key_env="GEMINI_API_KEY",
)
