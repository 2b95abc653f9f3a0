"""Run the application on Hypercorn: one process, one port, graceful shutdown, SIGHUP reloads."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sqlite3
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import Stockyard
from .settings import Settings
from .store.database import SchemaTooNew

log = logging.getLogger("stockyard")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not _is_loopback_host(settings.host) and not settings.admin_key:
        print(
            f"stockyard: refusing to listen on {settings.host} without an admin key: "
            "set STOCKYARD_ADMIN_KEY (the admin API would otherwise be open to the network)",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    except SystemExit as error:
        if error.code not in (0, None):
            print(error.code, file=sys.stderr)
            return 1
    except (SchemaTooNew, sqlite3.DatabaseError) as error:
        print(f"stockyard: cannot open the database {settings.db}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"stockyard: cannot listen on {settings.host}:{settings.port}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(settings: Settings) -> None:
    app = Stockyard(settings)
    try:
        if not await app.open():
            raise SystemExit(f"stockyard: cannot start: {app.reloader.status.message}")
        await _run_server(app, settings)
    finally:
        await app.close()  # after the server stopped: every queued record reaches the disk


async def _run_server(app: Stockyard, settings: Settings) -> None:
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.graceful_timeout = settings.grace
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    config.h11_max_incomplete_size = 64 * 1024
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: loop.create_task(app.reloader.reload(force=True, reason="SIGHUP"))
    )

    async def announce() -> None:
        # Hypercorn binds after the lifespan startup; wait until the app reports ready.
        while app.reloader.current is None and not stop.is_set():
            await asyncio.sleep(0.01)
        current = app.reloader.current
        if current is not None:
            files = ", ".join(current.generation.files)
            print(
                f"stockyard: listening on http://{host}:{settings.port}\n"
                f"stockyard: pipelines {settings.pipelines} ({len(current.generation.routes)} routes: {files})\n"
                f"stockyard: database {settings.db}",
                flush=True,
            )

    announcer = loop.create_task(announce())
    await serve(app, config, shutdown_trigger=stop.wait)
    announcer.cancel()
