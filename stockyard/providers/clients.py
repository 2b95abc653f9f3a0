"""Shared HTTP connection pools, one per provider. They live outside generations, so a reload
keeps warm connections."""

from __future__ import annotations

import aiohttp


class HttpClients:
    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}

    def session(self, name: str, max_connections: int | None) -> aiohttp.ClientSession:
        key = (name, max_connections or 0)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=max_connections or 256, ttl_dns_cache=300, keepalive_timeout=30
            )
            session = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[key] = session
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
