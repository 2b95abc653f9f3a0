"""``/api/lookout`` (traces, spend) and ``/api/brand`` / ``/api/trust`` (the ledger)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from quart import Blueprint, jsonify, request

from ..store.database import Store
from ..store.ledger import row_to_event
from ..store.money import dollars_text
from .auth import Guard, api_error

MAX_LIMIT = 500
GROUPS = ("day", "project", "key_id", "route", "model", "provider")


def _limit() -> int | None:
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        return None
    return int(raw)


def trace_json(row: sqlite3.Row, full: bool = False) -> dict[str, Any]:
    data = dict(row)
    data["cost"] = dollars_text(data.pop("cost_pico"))
    data["priced"] = bool(data["priced"])
    data["stream"] = bool(data["stream"])
    data["attempts"] = json.loads(data["attempts"])
    data["notes"] = json.loads(data["notes"])
    if not full:
        data.pop("request_body", None)
        data.pop("response_body", None)
    return data


def blueprint(store: Store, guard: Guard) -> Blueprint:
    bp = Blueprint("records", __name__)

    @bp.get("/api/lookout/traces")
    @guard
    async def traces() -> Any:
        limit = _limit()
        if limit is None:
            return api_error(400, f"`limit` must be a whole number from 1 to {MAX_LIMIT}")
        where: list[str] = []
        params: list[str | int] = []
        for field in ("route", "model", "provider", "project"):
            value = request.args.get(field)
            if value:
                where.append(f"{field} = ?")
                params.append(value)
        status = request.args.get("status")
        if status:
            if status == "error":
                where.append("(status >= 400 OR error IS NOT NULL)")
            elif status == "ok":
                where.append("(status < 400 AND error IS NULL)")
            elif status.isdigit():
                where.append("status = ?")
                params.append(int(status))
            else:
                return api_error(400, "`status` must be a status code, `ok` or `error`")
        before = request.args.get("before")
        if before:
            where.append("id < ?")
            params.append(before)
        sql = "SELECT * FROM traces" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = await store.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        items = [trace_json(r) for r in rows[:limit]]
        return jsonify(
            {"traces": items, "count": len(items), "next": items[-1]["id"] if more else None}
        )

    @bp.get("/api/lookout/traces/<trace_id>")
    @guard
    async def trace(trace_id: str) -> Any:
        rows = await store.query("SELECT * FROM traces WHERE id = ?", [trace_id])
        if not rows:
            return api_error(404, f"no trace `{trace_id}`")
        return jsonify(trace_json(rows[0], full=True))

    @bp.get("/api/lookout/spend")
    @guard
    async def spend() -> Any:
        days = request.args.get("days", "7")
        if not days.isdigit() or not 1 <= int(days) <= 3660:
            return api_error(400, "`days` must be a whole number from 1 to 3660")
        group_by = [g for g in request.args.get("group_by", "day").split(",") if g]
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            return api_error(
                400, f"cannot group by {unknown[0]!r}; choose from {', '.join(GROUPS)}"
            )
        columns = ", ".join(group_by)
        select = (columns + ", ") if group_by else ""
        sql = (
            f"SELECT {select}SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, "
            "SUM(completion_tokens) AS completion_tokens, SUM(cached_tokens) AS cached_tokens, "
            "SUM(cost_pico) AS cost_pico, SUM(unpriced) AS unpriced FROM spend_daily "
            "WHERE day >= date('now', ?)"
            + (f" GROUP BY {columns} ORDER BY {columns}" if group_by else "")
        )
        rows = await store.query(sql, [f"-{int(days) - 1} days"])
        items = []
        total = unpriced = 0
        for row in rows:
            data = dict(row)
            if data["requests"] is None:
                continue
            total += data["cost_pico"] or 0
            unpriced += data["unpriced"] or 0
            # `cost` covers the priced requests; when none of a row's requests could be priced
            # it is unknown (null), never $0. `unpriced` says how many are not in it.
            cost = data.pop("cost_pico") or 0
            data["cost"] = None if data["unpriced"] == data["requests"] else dollars_text(cost)
            items.append(data)
        return jsonify(
            {
                "days": int(days),
                "group_by": group_by,
                "rows": items,
                "total_cost": dollars_text(total),
                "unpriced": unpriced,
            }
        )

    @bp.get("/api/brand/ledger")
    @guard
    async def ledger() -> Any:
        limit = _limit()
        if limit is None:
            return api_error(400, f"`limit` must be a whole number from 1 to {MAX_LIMIT}")
        before = request.args.get("before")
        if before is not None and not before.isdigit():
            return api_error(400, "`before` must be a sequence number")
        sql = "SELECT seq, ts, type, actor, resource, action, detail, prev_hash, hash FROM ledger"
        params: list[Any] = []
        if before:
            sql += " WHERE seq < ?"
            params.append(int(before))
        rows = await store.query(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        events = [row_to_event(tuple(r)) for r in rows[:limit]]
        return jsonify(
            {"events": events, "count": len(events), "next": events[-1]["seq"] if more else None}
        )

    async def verify() -> Any:
        expect = request.args.get("expect_head") or None
        return jsonify(await store.verify_ledger(expect_head=expect))

    bp.add_url_rule("/api/trust/ledger/verify", "verify", guard(verify), methods=["GET"])
    bp.add_url_rule("/api/brand/ledger/verify", "verify_alias", guard(verify), methods=["GET"])
    return bp
