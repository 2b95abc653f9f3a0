"""The application: one ASGI callable serving ``/v1`` (the proxy), ``/api`` (admin), ``/health``,
``/metrics`` and ``/``.

``/v1`` goes straight to :class:`~stockyard.runtime.gateway.Gateway` (the hot path); everything
else is a Quart app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, g, jsonify

from .api import cache as cache_api
from .api import keys as keys_api
from .api import modules as modules_api
from .api import records
from .api.auth import admin_guard
from .core.generation import PASSTHROUGH
from .core.values import EnvRef
from .runtime.gateway import Gateway
from .runtime.reloader import Reloader
from .runtime.services import Services
from .settings import Settings
from .store.database import Store

log = logging.getLogger("stockyard")


class Stockyard:
    """Owns the services, the reloader and the two halves of the HTTP surface."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.db)
        self.services = Services(store=self.store)
        self.reloader = Reloader(settings.pipelines, self.services, on_event=self._config_event)
        self.gateway = Gateway(lambda: self.reloader.current, settings.max_body, self.services)
        self.guard = admin_guard(settings.admin_key)
        self.api = self._build_api()
        self._opened = False
        self._poller: asyncio.Task[None] | None = None

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            # The hot path reads the same ASGI objects as plain dicts, without the TypedDicts.
            await self.gateway(cast(dict[str, Any], scope), cast(Any, receive), cast(Any, send))
        else:
            await self.api(scope, receive, send)

    async def open(self) -> bool:
        """Open the store and load the pipelines. False (diagnostics logged) if nothing loaded."""
        if not self._opened:
            await self.store.open()
            await self.services.toggles.load(self.store)
            await self.services.keys.load(self.store)
            self._opened = True
        await self.reloader.reload(force=True, reason="startup")
        return self.reloader.current is not None

    async def close(self) -> None:
        """Stop watching, close pools, and flush every queued record to disk."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        await self.reloader.stop()
        # Requests the server tore down may still be running their end: let them queue what
        # they record before the store flushes and closes.
        if not await self.gateway.ending.drained(timeout=self.settings.grace + 5):
            log.warning("closing with %d requests still recording", self.gateway.ending.in_flight)
        await self.services.aclose()
        if self._opened:
            await self.store.close()
            self._opened = False

    async def _config_event(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        await self.store.add_event(
            "config", actor, f"pipelines:{self.settings.pipelines}", action, detail
        )

    async def _startup(self) -> None:
        if self.reloader.current is None and not await self.open():
            raise RuntimeError(f"stockyard: cannot start: {self.reloader.status.message}")
        if self.settings.watch:
            self.reloader.start_watching()
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_shared_state())

    async def _poll_shared_state(self, interval: float = 0.5) -> None:
        """Pick up keys and toggles changed by another process sharing the database."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.services.keys.load(self.store)
                if await self.services.toggles.load(self.store):
                    await self.reloader.reactivate()
            except Exception:
                log.exception("reading shared state from the database failed")

    async def _after_serving(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        await self.reloader.stop()

    def _build_api(self) -> Quart:
        app = Quart("stockyard")
        app.before_serving(self._startup)
        app.after_serving(self._after_serving)
        guard = self.guard
        app.register_blueprint(records.blueprint(self.store, guard))
        app.register_blueprint(
            modules_api.blueprint(
                self.store, self.services.toggles, self.reloader, self.reloader.reactivate, guard
            )
        )
        app.register_blueprint(keys_api.blueprint(self.store, self.services.keys, guard))
        app.register_blueprint(cache_api.blueprint(self.store, self.services, guard))

        @app.get("/health")
        async def health() -> Any:
            current = self.reloader.current
            return jsonify(
                {
                    "status": "ok" if current else "starting",
                    "routes": len(current.generation.routes) if current else 0,
                    "source_hash": current.generation.source_hash if current else None,
                }
            )

        @app.get("/metrics")
        @guard
        async def metrics() -> Any:
            status = self.reloader.status
            extra = {
                "stockyard_store_queue_depth": (
                    "gauge",
                    "Records waiting for the writer.",
                    self.store.queue_depth(),
                ),
                "stockyard_store_backpressure_total": (
                    "counter",
                    "Times a request waited for room in the writer queue.",
                    self.store.waits,
                ),
                "stockyard_store_failed_batches_total": (
                    "counter",
                    "Batches dropped after write failures.",
                    self.store.failed_batches,
                ),
                "stockyard_reloads_total": ("counter", "Pipeline reloads applied.", status.reloads),
                "stockyard_reload_failures_total": (
                    "counter",
                    "Pipeline reloads rejected.",
                    status.failures,
                ),
            }
            text = self.services.metrics.render(extra)
            return text, 200, {"content-type": "text/plain; version=0.0.4; charset=utf-8"}

        @app.get("/api/proxy/reload")
        @guard
        async def reload_status() -> Any:
            return jsonify(self.reloader.status.to_json())

        @app.post("/api/proxy/reload")
        @guard
        async def reload_now() -> Any:
            status = await self.reloader.reload(force=True, reason="api", actor=g.actor)
            return jsonify(status.to_json()), (200 if status.ok else 422)

        @app.get("/api/proxy/routes")
        @guard
        async def routes() -> Any:
            current = self.reloader.current
            items = [] if current is None else [r.to_json() for r in current.generation.routes]
            return jsonify({"routes": items})

        @app.get("/api/proxy/providers")
        @guard
        async def providers() -> Any:
            current = self.reloader.current
            breakers = self.services.breakers
            items = (
                []
                if current is None
                else [
                    {
                        "name": p.name,
                        "kind": p.kind,
                        "protocol": p.protocol,
                        "base_url": None if p.base_url is None else str(p.base_url),
                        "api_key": _key_source(p.api_key),
                        "circuit": breakers.state(p.name),
                    }
                    for p in current.generation.providers.values()
                ]
            )
            return jsonify({"providers": items})

        @app.get("/")
        async def landing() -> Any:
            return (
                "<!doctype html><meta charset=utf-8><title>Stockyard</title><h1>Stockyard</h1>"
                "<p>An LLM gateway. Point an OpenAI SDK at <code>/v1</code>.</p>"
                '<p><a href="/health">health</a></p>',
                200,
                {"content-type": "text/html; charset=utf-8"},
            )

        return app


def _key_source(api_key: str | EnvRef | None) -> str:
    """Where a provider's key comes from — never the key itself."""
    if api_key is None:
        return "none"
    if api_key == PASSTHROUGH:
        return PASSTHROUGH
    if isinstance(api_key, str):
        return "literal"
    return f"env:{api_key.name}"


def create_app(settings: Settings | None = None) -> Stockyard:
    return Stockyard(settings or Settings.from_env())
