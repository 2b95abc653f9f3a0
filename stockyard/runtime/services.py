"""State shared by every generation: the store, connection pools, breakers, metrics.

Circuit breakers are tuned by environment variables (read once, when the server starts):

- ``STOCKYARD_BREAKER_THRESHOLD``: consecutive failures that open a provider's breaker
  (default 5);
- ``STOCKYARD_BREAKER_COOLDOWN``: seconds an open breaker waits before letting one probe
  request through (default 30; a duration such as ``500ms`` or ``2s`` works too).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ..keys import KeyRing
from ..modules import REGISTRY
from ..providers.clients import HttpClients
from ..store.database import Store
from .breaker import DEFAULT_COOLDOWN, DEFAULT_THRESHOLD, Breakers
from .metrics import Metrics
from .toggles import Toggles

T = TypeVar("T")


def _duration(text: str) -> float:
    text = text.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def breakers_from_env() -> Breakers:
    """Breakers configured by STOCKYARD_BREAKER_THRESHOLD / STOCKYARD_BREAKER_COOLDOWN."""
    env = os.environ
    try:
        threshold = int(env.get("STOCKYARD_BREAKER_THRESHOLD") or DEFAULT_THRESHOLD)
        cooldown = _duration(env.get("STOCKYARD_BREAKER_COOLDOWN") or str(DEFAULT_COOLDOWN))
    except ValueError as error:
        raise ValueError(
            "STOCKYARD_BREAKER_THRESHOLD must be an integer and STOCKYARD_BREAKER_COOLDOWN a "
            f"number of seconds (or a duration like 500ms): {error}"
        ) from None
    if threshold < 1 or cooldown < 0:
        raise ValueError(
            "STOCKYARD_BREAKER_THRESHOLD must be >= 1 and STOCKYARD_BREAKER_COOLDOWN >= 0"
        )
    return Breakers(threshold, cooldown)


@dataclass
class Services:
    store: Store
    clients: HttpClients = field(default_factory=HttpClients)
    breakers: Breakers = field(default_factory=breakers_from_env)
    metrics: Metrics = field(default_factory=Metrics)
    toggles: Toggles = field(default_factory=lambda: Toggles(REGISTRY))
    keys: KeyRing = field(default_factory=KeyRing)
    # Per-module state that must survive reloads (rate-limit buckets, reservations, …).
    state: dict[str, Any] = field(default_factory=dict)

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """The module's long-lived state object, created on first use."""
        if name not in self.state:
            self.state[name] = factory()
        # One module owns each name and always passes the same factory: the type holds.
        return cast(T, self.state[name])

    async def aclose(self) -> None:
        await self.clients.aclose()
