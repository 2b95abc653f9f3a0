"""Run `stockyard serve` with a different event loop or ASGI server, for benchmark experiments
only: stockyard itself is not changed.

    python bench/serve_variant.py --loop uvloop -- serve --port 4200 ...
    python bench/serve_variant.py --server uvicorn -- serve --port 4200 ...
    python bench/serve_variant.py --floor [--server uvicorn] -- serve --port 4200 ...

``--loop uvloop`` installs uvloop's event loop policy, then runs the normal command line
(``asyncio.run`` in stockyard/server.py then runs on uvloop). ``--server uvicorn`` serves the
same ASGI application (stockyard.app.Stockyard) with uvicorn (httptools, uvloop) instead of
Hypercorn; it needs ``pip install uvicorn httptools uvloop``. ``--floor`` serves no Stockyard at
all but a bare ASGI callable that answers every request with a fixed chat.completion body, on
the same server settings: the ceiling of the server itself, with no upstream call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--server", choices=("hypercorn", "uvicorn"), default="hypercorn")
    parser.add_argument("--floor", action="store_true", help="a bare ASGI app instead of Stockyard")
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        choices=("dummy-cookie-jar",),
        help="dummy-cookie-jar: aiohttp sessions keep no cookies (DummyCookieJar)",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if "dummy-cookie-jar" in args.patch:
        _patch_cookie_jar()
    if args.floor:
        return _floor(rest, args.server)
    if args.server == "hypercorn":
        from stockyard.cli import main as stockyard

        return stockyard(rest)
    return _uvicorn(rest)


def _patch_cookie_jar() -> None:
    """Every aiohttp.ClientSession without an explicit cookie_jar gets a DummyCookieJar."""
    import aiohttp

    original = aiohttp.ClientSession.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("cookie_jar", aiohttp.DummyCookieJar())
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]


def _uvicorn(argv: list[str]) -> int:
    """What stockyard/server.py does, with uvicorn (httptools parser, uvloop) in Hypercorn's place."""
    import logging
    from pathlib import Path

    import uvicorn
    import uvloop

    from stockyard.app import Stockyard
    from stockyard.settings import Settings

    options = argparse.ArgumentParser()
    options.add_argument("command")
    options.add_argument("--port", type=int)
    options.add_argument("--pipelines")
    options.add_argument("--db")
    options.add_argument("--no-watch", action="store_true")
    args = options.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env(
        port=args.port,
        pipelines=Path(args.pipelines),
        db=Path(args.db),
        watch=False if args.no_watch else None,
    )

    async def serve() -> None:
        app = Stockyard(settings)
        opener = getattr(app, "open", None) or app.load
        try:
            if not await opener():
                raise SystemExit(f"stockyard: cannot start: {app.reloader.status.message}")
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                http="httptools",
                lifespan="on",
                access_log=False,
                log_level="warning",
                timeout_keep_alive=75,
            )
            await uvicorn.Server(config).serve()
        finally:
            closer = getattr(app, "close", None)
            if closer is not None:
                await closer()

    uvloop.run(serve())
    return 0


def _floor(argv: list[str], server: str) -> int:
    import signal

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from upstream import completion_body

    options = argparse.ArgumentParser()
    options.add_argument("command")
    options.add_argument("--port", type=int)
    args, _ = options.parse_known_args(argv)
    body = completion_body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    kind = message["type"].rsplit(".", 1)[-1]
                    await send({"type": f"lifespan.{kind}.complete"})
                    if kind == "shutdown":
                        return
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        reply = b'{"status":"ok"}' if scope["path"] == "/health" else body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(reply)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    del headers
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            http="httptools",
            loop="uvloop",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=75,
        )
        return 0
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.keep_alive_timeout = 75
    config.h11_max_incomplete_size = 64 * 1024

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
