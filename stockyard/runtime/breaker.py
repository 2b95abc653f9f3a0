"""Circuit breakers, one per provider, shared across generations.

closed → (``threshold`` consecutive failures) → open → (``cooldown`` passes) → half-open: one
probe request is let through; success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breakers:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._states: dict[str, _State] = {}

    def allow(self, provider: str) -> bool:
        state = self._states.get(provider)
        if state is None or state.opened_at is None:
            return True
        if state.probing or time.monotonic() - state.opened_at < self.cooldown:
            return False
        state.probing = True  # half-open: this caller is the probe
        return True

    def success(self, provider: str) -> None:
        state = self._states.get(provider)
        if state is not None:
            state.failures = 0
            state.opened_at = None
            state.probing = False

    def failure(self, provider: str) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        if state.probing or state.failures >= self.threshold:
            state.opened_at = time.monotonic()
            state.probing = False

    def state(self, provider: str) -> str:
        state = self._states.get(provider)
        if state is None or state.opened_at is None:
            return "closed"
        if state.probing:
            return "half-open"
        if time.monotonic() - state.opened_at >= self.cooldown:
            return "half-open"
        return "open"
