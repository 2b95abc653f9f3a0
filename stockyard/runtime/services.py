"""State shared by every generation: connection pools, breakers (and later: store, counters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .breaker import Breakers
from .clients import HttpClients


@dataclass
class Services:
    clients: HttpClients = field(default_factory=HttpClients)
    breakers: Breakers = field(default_factory=Breakers)

    async def aclose(self) -> None:
        await self.clients.aclose()
