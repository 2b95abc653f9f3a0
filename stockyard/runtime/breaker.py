"""Circuit breakers, one per provider, shared across generations.

closed → (``threshold`` consecutive failures) → open → (``cooldown`` passes) → half-open: one
probe request is let through; success closes the breaker, failure opens it again. A probe that
ends neither way (the provider answered a 4xx, the caller went away) hands the half-open slot
to the next request, and a probe that never reports back stops blocking after ``cooldown``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_THRESHOLD = 5
DEFAULT_COOLDOWN = 30.0


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    probe_started: float | None = None  # set while a half-open probe is in flight


class Breakers:
    def __init__(
        self, threshold: int = DEFAULT_THRESHOLD, cooldown: float = DEFAULT_COOLDOWN
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._states: dict[str, _State] = {}

    def allow(self, provider: str) -> bool:
        state = self._states.get(provider)
        if state is None or state.opened_at is None:
            return True
        now = time.monotonic()
        if now - state.opened_at < self.cooldown:
            return False
        if state.probe_started is not None and now - state.probe_started < max(self.cooldown, 1.0):
            return False  # another request is probing
        state.probe_started = now  # half-open: this caller is the probe
        return True

    def success(self, provider: str) -> None:
        state = self._states.get(provider)
        if state is not None:
            state.failures = 0
            state.opened_at = None
            state.probe_started = None

    def failure(self, provider: str) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        if state.probe_started is not None or state.failures >= self.threshold:
            state.opened_at = time.monotonic()
            state.probe_started = None

    def release(self, provider: str) -> None:
        """The request ended without telling whether the provider is healthy (a 4xx answer, a
        cancelled call): if it was the half-open probe, let the next request probe instead."""
        state = self._states.get(provider)
        if state is not None:
            state.probe_started = None

    def reset(self, provider: str) -> None:
        """Forget everything about ``provider`` (its definition changed)."""
        self._states.pop(provider, None)

    def state(self, provider: str) -> str:
        state = self._states.get(provider)
        if state is None or state.opened_at is None:
            return "closed"
        if state.probe_started is not None:
            return "half-open"
        if time.monotonic() - state.opened_at >= self.cooldown:
            return "half-open"
        return "open"
