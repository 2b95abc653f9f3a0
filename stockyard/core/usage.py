"""Token usage of one request, as the provider reported it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    known: bool = False

    @classmethod
    def from_openai(cls, usage: dict[str, Any]) -> Usage:
        """The counts of an OpenAI ``usage`` object."""
        counted = cls()
        counted.update_from_openai(usage)
        return counted

    def update_from_openai(self, usage: dict[str, Any] | None) -> None:
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _int(usage.get("prompt_tokens"))
        self.completion_tokens = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        out = usage.get("completion_tokens_details") or {}
        self.reasoning_tokens = _int(out.get("reasoning_tokens")) if isinstance(out, dict) else 0
        # Cached tokens are part of the prompt; an upstream that says otherwise is not believed.
        self.cached_tokens = min(self.cached_tokens, self.prompt_tokens)
        self.known = True


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
