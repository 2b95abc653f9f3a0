"""``/api/keys``: create, list and revoke gateway keys. A new key is shown once."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, g, jsonify, request

from ..keys import KeyRing
from ..store.database import Store
from .auth import Guard, api_error


def _strings(value: Any, field: str) -> list[str] | str:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return f"`{field}` must be a list of non-empty strings"
    return value


def blueprint(store: Store, keys: KeyRing, guard: Guard) -> Blueprint:
    bp = Blueprint("keys", __name__)

    @bp.get("/api/keys")
    @guard
    async def list_keys() -> Any:
        items = [k.to_json() for k in keys.all()]
        return jsonify({"keys": items, "count": len(items)})

    @bp.post("/api/keys")
    @guard
    async def create_key() -> Any:
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            return api_error(400, 'send a JSON object: {"project": "…", "name": "…"}')
        project = body.get("project")
        if not isinstance(project, str) or not project.strip():
            return api_error(400, "`project` is required")
        name = body.get("name") or project
        if not isinstance(name, str):
            return api_error(400, "`name` must be a string")
        routes = _strings(body.get("routes"), "routes")
        if isinstance(routes, str):  # the problem, in words
            return api_error(400, routes)
        models = _strings(body.get("models"), "models")
        if isinstance(models, str):
            return api_error(400, models)
        expires_at = body.get("expires_at")
        expires_in = body.get("expires_in")
        if expires_in is not None:
            if (
                not isinstance(expires_in, int | float)
                or isinstance(expires_in, bool)
                or expires_in <= 0
            ):
                return api_error(400, "`expires_in` must be a positive number of seconds")
            expires_at = time.time() + expires_in
        if expires_at is not None and (
            not isinstance(expires_at, int | float) or isinstance(expires_at, bool)
        ):
            return api_error(400, "`expires_at` must be a Unix time")
        key, record = await keys.create(
            store, project.strip(), name, routes, models, expires_at, g.actor
        )
        return jsonify(
            {
                "key": key,
                **record.to_json(),
                "note": "this is the only time the key is shown; store it now",
            }
        ), 201

    @bp.delete("/api/keys/<key_id>")
    @guard
    async def revoke_key(key_id: str) -> Any:
        record = await keys.revoke(store, key_id, g.actor)
        if record is None:
            return api_error(404, f"no key `{key_id}`")
        return jsonify(record.to_json())

    return bp
