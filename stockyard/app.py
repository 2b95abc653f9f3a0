"""The application: one ASGI callable serving ``/v1`` (the proxy), ``/api`` (admin), ``/health``.

``/v1`` goes straight to :class:`~stockyard.runtime.gateway.Gateway` (the hot path); everything
else is a Quart app.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import Quart, jsonify, request

from .runtime.gateway import Gateway
from .runtime.reloader import Reloader
from .runtime.services import Services
from .settings import Settings

log = logging.getLogger("stockyard")


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Stockyard:
    """Owns the services, the reloader and the two halves of the HTTP surface."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = Services()
        self.reloader = Reloader(settings.pipelines, self.services)
        self.gateway = Gateway(lambda: self.reloader.current, settings.max_body)
        self.api = self._build_api()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.gateway(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    async def load(self) -> bool:
        """The first load, before serving. False (with diagnostics logged) if nothing loaded."""
        await self.reloader.reload(force=True, reason="startup")
        return self.reloader.current is not None

    async def startup(self) -> None:
        if self.reloader.current is None and not await self.load():
            raise RuntimeError(f"stockyard: cannot start: {self.reloader.status.message}")
        if self.settings.watch:
            self.reloader.start_watching()

    async def shutdown(self) -> None:
        await self.reloader.stop()
        await self.services.aclose()

    def admin(self, view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Require the admin key; with none configured, serve loopback callers only."""

        @wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            key = self.settings.admin_key
            if key is None:
                if not _is_loopback(request.remote_addr):
                    return _error(403, "admin API is limited to loopback callers (no admin key set)")
                return await view(*args, **kwargs)
            given = request.headers.get("x-admin-key") or ""
            auth = request.headers.get("authorization", "")
            if not given and auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
            if not given:
                return _error(401, "admin key required (Authorization: Bearer … or X-Admin-Key)")
            if not hmac.compare_digest(given.encode(), key.encode()):
                return _error(403, "wrong admin key")
            return await view(*args, **kwargs)

        return guarded

    def _build_api(self) -> Quart:
        app = Quart("stockyard")
        app.before_serving(self.startup)
        app.after_serving(self.shutdown)

        @app.get("/health")
        async def health() -> Any:
            current = self.reloader.current
            return jsonify({
                "status": "ok" if current else "starting",
                "routes": len(current.generation.routes) if current else 0,
                "source_hash": current.generation.source_hash if current else None,
            })

        @app.route("/api/proxy/reload", methods=["GET"])
        @self.admin
        async def reload_status() -> Any:
            return jsonify(self.reloader.status.to_json())

        @app.route("/api/proxy/reload", methods=["POST"])
        @self.admin
        async def reload_now() -> Any:
            status = await self.reloader.reload(force=True, reason="api")
            return jsonify(status.to_json()), (200 if status.ok else 422)

        @app.get("/api/proxy/routes")
        @self.admin
        async def routes() -> Any:
            current = self.reloader.current
            if current is None:
                return jsonify({"routes": []})
            return jsonify({"routes": [
                {"name": r.name, "paths": list(r.paths), "models": list(r.models),
                 "chain": r.chain_text(), "modules": [m.name for m in r.modules], "source": r.source}
                for r in current.generation.routes
            ]})

        @app.get("/api/proxy/providers")
        @self.admin
        async def providers() -> Any:
            current = self.reloader.current
            if current is None:
                return jsonify({"providers": []})
            breakers = self.services.breakers
            return jsonify({"providers": [
                {"name": p.name, "kind": p.kind, "base_url": str(p.base_url) if p.base_url else None,
                 "api_key": "passthrough" if p.api_key == "passthrough" else
                 ("env" if p.api_key is not None and not isinstance(p.api_key, str) else
                  ("configured" if p.api_key else "none")),
                 "circuit": breakers.state(p.name)}
                for p in current.generation.providers.values()
            ]})

        @app.get("/")
        async def landing() -> Any:
            return (
                "<!doctype html><title>Stockyard</title><h1>Stockyard</h1>"
                "<p>LLM gateway. Point an OpenAI SDK at <code>/v1</code>.</p>"
                '<p><a href="/health">health</a></p>',
                200,
                {"content-type": "text/html; charset=utf-8"},
            )

        return app


def _error(status: int, message: str) -> Any:
    kind = {401: "authentication_error", 403: "permission_error"}.get(status, "api_error")
    return jsonify({"error": {"message": message, "type": kind, "code": None, "param": None}}), status


def create_app(settings: Settings | None = None) -> Stockyard:
    return Stockyard(settings or Settings.from_env())
