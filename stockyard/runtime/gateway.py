"""The ``/v1`` proxy as a plain ASGI application: the hot path, kept free of framework layers.

Per request: read the body (bounded), validate it, pick the route from the current generation
(read once), run the route's prebuilt handler, and send the answer — streaming chunk by chunk.
Then, once, the end-of-request sequence (:mod:`stockyard.runtime.end`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..core import sse
from ..core.context import RequestContext, new_trace_id
from ..core.response import GatewayResponse
from ..exceptions import GatewayError, InvalidRequest, NoRoute, PayloadTooLarge
from .end import Ending
from .pipeline import ActiveGeneration
from .services import Services

log = logging.getLogger("stockyard.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Gateway:
    def __init__(
        self, current: Callable[[], ActiveGeneration | None], max_body: int, services: Services
    ) -> None:
        self.current = current
        self.max_body = max_body
        self.services = services
        self.ending = Ending(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        trace_id = new_trace_id()
        try:
            if scope["path"] == "/v1/models" and scope["method"] in ("GET", "HEAD"):
                await _send_json(send, 200, self._models(), {"x-stockyard-trace-id": trace_id})
                return
            ctx, active = await self._context(scope, receive, trace_id, started)
        except GatewayError as error:
            self.services.metrics.reject(error.status)
            await _send_error(send, error, {"x-stockyard-trace-id": trace_id})
            return
        # From here on the request is routed: whatever happens, its end runs once, below.
        work = asyncio.current_task()
        assert work is not None
        watcher = asyncio.ensure_future(_watch_disconnect(receive, ctx, work))
        response: GatewayResponse | None = None
        try:
            response = await self._handle(ctx, active, send)
            if response is not None:
                await _send_response(ctx, response, send)
        except asyncio.CancelledError:
            if not ctx.disconnected:
                raise
            work.uncancel()  # our own cancellation: the request is over, its end is not
            ctx.status = ctx.status or 499
            ctx.error = ctx.error or "client disconnected"
        finally:
            watcher.cancel()
            try:
                await self.ending.run(ctx, response, active.prices)
            except asyncio.CancelledError:
                # The caller left just as the answer ended: the steps have all run regardless.
                if not ctx.disconnected:
                    raise
                work.uncancel()

    def _models(self) -> dict[str, Any]:
        active = self.current()
        seen: dict[str, str] = {}
        if active is not None:
            for route in active.generation.routes:
                names = list(route.models) or ["*"]
                names += [h.model for t in route.chain for h in t.hops if h.model]
                for name in names:
                    seen.setdefault(name, route.name)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": f"stockyard:{route}"}
            for name, route in seen.items()
        ]
        return {"object": "list", "data": data}

    async def _context(
        self, scope: Scope, receive: Receive, trace_id: str, started: float
    ) -> tuple[RequestContext, ActiveGeneration]:
        if scope["method"] != "POST":
            raise GatewayError(
                f"{scope['path']} takes POST",
                status=405,
                code="method_not_allowed",
                headers={"allow": "POST"},
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw = await self._read_body(receive, headers)
        body = _parse(raw)
        path = scope["path"]
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest(
                "`model` is required and must be a non-empty string", param="model"
            )
        active = self.current()
        if active is None:
            raise GatewayError("no pipeline is loaded", status=503, code="not_ready")
        generation = active.generation
        route = active.router.route_for(path, model)
        if route is None:
            raise _no_route(generation, path, model)
        client = scope.get("client") or ("", 0)
        ctx = RequestContext(
            id=trace_id,
            method="POST",
            path=path,
            headers=headers,
            client_ip=client[0] or "",
            raw_body=raw,
            body=body,
            generation=generation,
            route=route,
            model=model,
            stream=body.get("stream") is True,
            started=started,
        )
        ctx.project = headers.get("x-stockyard-project") or "default"
        return ctx, active

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {self.max_body}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise GatewayError("client disconnected", status=499, code="client_closed")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    async def _handle(
        self, ctx: RequestContext, active: ActiveGeneration, send: Send
    ) -> GatewayResponse | None:
        """Run the route's handler; an error it raises is answered here (and None returned)."""
        handler = active.handlers[ctx.route.name]
        try:
            return await handler(ctx)
        except GatewayError as error:
            ctx.status = error.status
            ctx.error = error.message
            await _send_error(send, error, _headers(ctx))
        except Exception:
            log.exception("request %s failed inside the gateway", ctx.id)
            ctx.status = 500
            await _send_error(
                send,
                GatewayError("internal gateway error; see the gateway log", code="internal_error"),
                _headers(ctx),
            )
        return None


async def _send_response(ctx: RequestContext, response: GatewayResponse, send: Send) -> None:
    headers = {**response.headers, **_headers(ctx)}
    ctx.status = ctx.status or response.status
    if response.stream is None:
        if ctx.keep_bodies:
            ctx.response_body = response.body
        await _start(send, response.status, headers)
        await send({"type": "http.response.body", "body": response.body})
        return
    await _start(send, response.status, headers)
    await _pump(ctx, response, send)


async def _watch_disconnect(receive: Receive, ctx: RequestContext, work: asyncio.Task[Any]) -> None:
    """Wait for the caller to go away (the body is already read), then cancel the request."""
    while (await receive())["type"] != "http.disconnect":
        pass
    ctx.disconnected = True
    work.cancel()


def _headers(ctx: RequestContext) -> dict[str, str]:
    ctx.overhead_ms = max(0.0, ctx.elapsed_ms() - ctx.upstream_ms)
    headers = {
        "x-stockyard-trace-id": ctx.id,
        "x-stockyard-route": ctx.route.name,
        "x-stockyard-overhead-ms": f"{ctx.overhead_ms:.3f}",
    }
    if ctx.provider:
        headers["x-stockyard-provider"] = ctx.provider
    if ctx.cache:
        headers["x-stockyard-cache"] = ctx.cache
    headers.update(ctx.response_headers)
    return headers


async def _pump(ctx: RequestContext, response: GatewayResponse, send: Send) -> None:
    """Forward a stream chunk by chunk as it arrives. An upstream failure after the first byte
    becomes an SSE error event (never a fake [DONE]). The end-of-request sequence closes the
    stream (which stops the upstream if the caller left first)."""
    stream = response.stream
    assert stream is not None
    kept: list[bytes] | None = [] if ctx.keep_bodies else None
    try:
        try:
            async for chunk in stream:
                if kept is not None and len(kept) < 4096:
                    kept.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as error:  # the upstream failed after the first byte
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            ctx.error = f"stream interrupted: {message}"
            ctx.status = 502
            log.warning("stream %s interrupted: %s", ctx.id, message)
            failure = sse.error_event(
                f"upstream stream failed: {message}", "upstream_error", "stream_interrupted"
            )
            await send({"type": "http.response.body", "body": failure, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        if kept is not None:
            ctx.response_body = b"".join(kept)


def _parse(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _no_route(generation: Any, path: str, model: str) -> NoRoute:
    on_path = [r for r in generation.routes if path in r.paths]
    if on_path:
        served = "; ".join(f"`{r.name}` ({', '.join(r.models) or '*'})" for r in on_path)
        return NoRoute(
            f"no route serves model `{model}` on {path}; routes here: {served}", param="model"
        )
    names = ", ".join(f"`{r.name}`" for r in generation.routes) or "none"
    return NoRoute(f"no route serves {path} (model `{model}`); routes: {names}")


async def _start(send: Send, status: int, headers: dict[str, str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )


async def _send_json(send: Send, status: int, payload: Any, headers: dict[str, str]) -> None:
    await _start(send, status, {"content-type": "application/json", **headers})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})


async def _send_error(send: Send, error: GatewayError, headers: dict[str, str]) -> None:
    await _send_json(send, error.status, error.to_json(), {**headers, **error.headers})
