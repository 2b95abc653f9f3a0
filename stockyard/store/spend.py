"""Spend counters in memory, per scope and period, rebuilt from ``spend_daily`` at start-up.

Caps read these on the hot path; the database holds the durable rollups.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any


def utc_day(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if ts is None else ts))


class SpendCounters:
    """Pico-dollars spent, by (scope, value, day) and (scope, value, month)."""

    SCOPES = ("project", "key", "route")

    def __init__(self) -> None:
        self.daily: dict[tuple[str, str, str], int] = defaultdict(int)
        self.monthly: dict[tuple[str, str, str], int] = defaultdict(int)

    def add(self, day: str, project: str, key_id: str, route: str, pico: int) -> None:
        month = day[:7]
        for scope, value in (("project", project), ("key", key_id), ("route", route)):
            if value:
                self.daily[(scope, value, day)] += pico
                self.monthly[(scope, value, month)] += pico

    def spent(self, scope: str, value: str, day: str) -> tuple[int, int]:
        """(today, this month) in pico-dollars."""
        return self.daily.get((scope, value, day), 0), self.monthly.get((scope, value, day[:7]), 0)

    async def load(self, conn: Any) -> None:
        month = utc_day()[:7]
        async with conn.execute(
            "SELECT day, project, key_id, route, SUM(cost_pico) FROM spend_daily "
            "WHERE day >= ? GROUP BY day, project, key_id, route",
            (month + "-01",),
        ) as cursor:
            async for day, project, key_id, route, pico in cursor:
                self.add(day, project, key_id, route, int(pico or 0))
