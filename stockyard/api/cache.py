"""``/api/cache``: what the response cache holds and what it saved; clear it.

- ``GET /api/cache/stats`` (``?project=``, ``?route=``): live entries and their bytes, hits,
  misses, hit rate, answers stored and the cost saved (an exact decimal string), in total and
  per project. Pending counter deltas are flushed first, so the answer includes every request
  that has ended. Counters live in SQLite (``cache_stats``): they survive restarts and are not
  reset by ``DELETE`` (they are history; entries are the present).
- ``DELETE /api/cache`` (``?project=``, ``?route=``): remove entries, committed before the
  answer; an admin event in the audit ledger.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, g, jsonify, request

from ..modules.cache import state
from ..runtime.services import Services
from ..store.database import Store
from ..store.money import dollars_text
from .auth import Guard


def _filters() -> tuple[str, list[Any], dict[str, str | None]]:
    where, params = [], []
    shown: dict[str, str | None] = {}
    for name in ("project", "route"):
        value = request.args.get(name) or None
        shown[name] = value
        if value:
            where.append(f"{name} = ?")
            params.append(value)
    return " AND ".join(where), params, shown


def _rate(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 6) if hits + misses else None


async def _committed(conn: Any) -> None:
    """Nothing: awaited through the writer, it returns once everything queued before is committed."""


def blueprint(store: Store, services: Services, guard: Guard) -> Blueprint:
    bp = Blueprint("cache", __name__)

    @bp.get("/api/cache/stats")
    @guard
    async def stats() -> Any:
        where, params, shown = _filters()
        await state(services).write()  # every request that has ended is counted
        now = time.time()
        live = "expires_at > ?" + (f" AND {where}" if where else "")
        entries = await store.query(
            "SELECT project, COUNT(*) AS entries, COALESCE(SUM(LENGTH(body)), 0) AS bytes "
            f"FROM cache WHERE {live} GROUP BY project",
            [now, *params],
        )
        counts = await store.query(
            "SELECT project, SUM(hits) AS hits, SUM(misses) AS misses, SUM(stored) AS stored, "
            "SUM(saved_pico) AS saved_pico, SUM(saved_unknown) AS saved_unknown FROM cache_stats"
            + (f" WHERE {where}" if where else "")
            + " GROUP BY project",
            params,
        )
        projects: dict[str, dict[str, int]] = {}
        zero = {"entries": 0, "bytes": 0, "hits": 0, "misses": 0, "stored": 0, "saved_pico": 0,
                "saved_unknown": 0}  # fmt: skip
        for row in [*entries, *counts]:
            data = projects.setdefault(row["project"], dict(zero))
            for name in row.keys():
                if name != "project":
                    data[name] = int(row[name] or 0)

        def shape(data: dict[str, int]) -> dict[str, Any]:
            return {
                "entries": data["entries"],
                "bytes": data["bytes"],
                "hits": data["hits"],
                "misses": data["misses"],
                "hit_rate": _rate(data["hits"], data["misses"]),
                "stored": data["stored"],
                "cost_saved": dollars_text(data["saved_pico"]),
                "hits_cost_unknown": data["saved_unknown"],
            }

        total = {name: sum(p[name] for p in projects.values()) for name in zero}
        return jsonify(
            {
                **shape(total),
                **shown,
                "projects": [
                    {"project": name, **shape(data)} for name, data in sorted(projects.items())
                ],
                "counters": "persistent: kept in the database, they survive restarts and DELETE",
            }
        )

    @bp.delete("/api/cache")
    @guard
    async def clear() -> Any:
        where, params, shown = _filters()

        async def work(conn: Any) -> int:
            cursor = await conn.execute(
                "DELETE FROM cache" + (f" WHERE {where}" if where else ""), params
            )
            return int(cursor.rowcount)

        # answers not yet committed are written first, in the same transaction, then deleted
        deleted = await state(services).write(work)
        await store.add_event(
            "admin", g.actor, "cache", "cache.clear", {**shown, "deleted": deleted}
        )
        await store.call(_committed)  # the event is in the ledger before we answer
        return jsonify({"deleted": deleted, **shown})

    return bp
