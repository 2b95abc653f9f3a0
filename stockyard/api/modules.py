"""``/api/proxy/modules``: runtime toggles — see and switch modules, per route or everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, g, jsonify, request

from ..modules import REGISTRY
from ..runtime.reloader import Reloader
from ..runtime.toggles import ALL_ROUTES, Toggles, check_params
from ..store.database import Store
from .auth import Guard, api_error


def _describe(name: str, toggles: Toggles, reloader: Reloader) -> dict[str, Any]:
    spec = REGISTRY[name]
    current = reloader.current
    routes = []
    declared_anywhere = False
    for route in current.generation.routes if current else ():
        config = next((m for m in route.modules if m.name == name), None)
        toggle, source = toggles.toggle_for(name, route.name)
        if config is None:
            routes.append(
                {
                    "route": route.name,
                    "declared": False,
                    "effective": {"enabled": False},
                    "source": "pipeline",
                    "override": toggle.to_json() if toggle else None,
                }
            )
            continue
        declared_anywhere = True
        enabled, params, source = toggles.effective(route.name, config)
        routes.append(
            {
                "route": route.name,
                "declared": True,
                "compiled": {"enabled": True, "params": _jsonable(config.params)},
                "override": toggle.to_json() if toggle else None,
                "effective": {"enabled": enabled, "params": _jsonable(params)},
                "source": source,
            }
        )
    route_names = {r.name for r in current.generation.routes} if current else set()
    stale = [
        o.to_json() | {"problem": f"route `{o.route}` no longer exists"}
        for (m, r), o in toggles.stored.items()
        if m == name and r and r not in route_names
    ]
    return {
        "name": name,
        "doc": spec.doc,
        "params": {
            p: {
                "doc": v.doc,
                "type": v.type.words,
                "default": None if v.required else _jsonable(v.default),
            }
            for p, v in spec.params.items()
        },
        "declared": declared_anywhere,
        "routes": routes,
        "stale_overrides": stale,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict | type({}.items())):
        return {k: _jsonable(v) for k, v in dict(value).items()}
    if hasattr(value, "items") and not isinstance(value, str):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def blueprint(
    store: Store,
    toggles: Toggles,
    reloader: Reloader,
    rebuild: Callable[[], Awaitable[None]],
    guard: Guard,
) -> Blueprint:
    bp = Blueprint("modules", __name__)

    @bp.get("/api/proxy/modules")
    @guard
    async def list_modules() -> Any:
        return jsonify({"modules": [_describe(n, toggles, reloader) for n in REGISTRY]})

    @bp.get("/api/proxy/modules/<name>")
    @guard
    async def get_module(name: str) -> Any:
        if name not in REGISTRY:
            return api_error(404, f"unknown module `{name}`")
        return jsonify(_describe(name, toggles, reloader))

    @bp.put("/api/proxy/modules/<name>")
    @guard
    async def put_module(name: str) -> Any:
        if name not in REGISTRY:
            return api_error(404, f"unknown module `{name}`; modules: {', '.join(REGISTRY)}")
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            return api_error(
                400, 'send a JSON object: {"enabled": false, "params": {…}, "route": "…"}'
            )
        unknown = set(body) - {"enabled", "params", "route"}
        if unknown:
            return api_error(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        enabled = body.get("enabled")
        params = body.get("params")
        route = body.get("route") or ALL_ROUTES
        if enabled is not None and not isinstance(enabled, bool):
            return api_error(400, "`enabled` must be true or false")
        if params is not None and not isinstance(params, dict):
            return api_error(400, "`params` must be an object")
        if enabled is None and params is None:
            return api_error(400, "nothing to change: give `enabled` and/or `params`")
        if not isinstance(route, str):
            return api_error(400, "`route` must be a route name")
        current = reloader.current
        routes = {r.name: r for r in current.generation.routes} if current else {}
        if route and route not in routes:
            return api_error(404, f"unknown route `{route}`; routes: {', '.join(routes) or 'none'}")
        declaring = [r for r in routes.values() if any(m.name == name for m in r.modules)]
        if route and not any(r.name == route for r in declaring):
            return api_error(
                400,
                f"route `{route}` does not declare module `{name}`; "
                "add it to the route's `modules` in the .pipe file",
            )
        if not declaring:
            return api_error(400, f"no route declares module `{name}`")
        if params:
            problems: list[dict[str, Any]] = []
            targets = [r for r in declaring if not route or r.name == route]
            for target in targets:  # the toggle must make sense on every route it lands on
                config = next(m for m in target.modules if m.name == name)
                _typed, problems = check_params(REGISTRY[name], params, config.params)
                if problems:
                    break
            if problems:
                return jsonify(
                    {
                        "error": {
                            "message": problems[0]["message"],
                            "type": "invalid_request_error",
                            "code": problems[0]["code"],
                            "param": problems[0]["param"],
                        },
                        "diagnostics": problems,
                    }
                ), 400
        previous, _ = toggles.toggle_for(name, route)
        toggle = await toggles.put(store, name, route, enabled, params, g.actor)
        await store.add_event(
            "admin",
            g.actor,
            f"module:{name}",
            "module.override",
            {
                "route": route or None,
                "enabled": enabled,
                "params": params,
                "previous": previous.to_json() if previous and previous.route == route else None,
            },
        )
        await rebuild()
        return jsonify({"override": toggle.to_json(), "module": _describe(name, toggles, reloader)})

    @bp.delete("/api/proxy/modules/<name>")
    @guard
    async def delete_module(name: str) -> Any:
        if name not in REGISTRY:
            return api_error(404, f"unknown module `{name}`")
        route = request.args.get("route") or ALL_ROUTES
        removed = await toggles.delete(store, name, route)
        if removed is None:
            where = f"route `{route}`" if route else "all routes"
            return api_error(404, f"no toggle of `{name}` for {where}")
        await store.add_event(
            "admin",
            g.actor,
            f"module:{name}",
            "module.reset",
            {"route": route or None, "removed": removed.to_json()},
        )
        await rebuild()
        return jsonify({"removed": removed.to_json(), "module": _describe(name, toggles, reloader)})

    return bp
