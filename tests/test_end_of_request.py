"""The end-of-request sequence (``stockyard.runtime.end``): close, usage, price, spend, then the
modules' SETTLE, KEEP, TRACE and AUDIT hooks, then metrics — once per routed request, each step
isolated from the others' failures, nothing lost when the server stops.

Prices come from ``price`` blocks; the harness upstream reports 11 prompt + 7 completion tokens,
so at $100/1M input and $200/1M output a request costs exactly $0.0025 (and ``cost_cap``
reserves $0.0039 for it: see tests/test_module_cost_cap.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from stockyard.catalog import check
from stockyard.core import generation as generation_module
from stockyard.core.context import Phase, RequestContext, new_trace_id
from stockyard.core.response import GatewayResponse
from stockyard.dsl import CheckOptions
from stockyard.modules.cost_cap import Reservations
from stockyard.runtime.end import Ending
from stockyard.runtime.gateway import Gateway as AsgiGateway
from stockyard.runtime.pipeline import ActiveGeneration, activate
from stockyard.runtime.router import Router
from stockyard.runtime.services import Services
from stockyard.store.database import Store

from .harness import Behaviour, Upstream, provider, running_gateway

MESSAGES = [{"role": "user", "content": "x" * 20}]
ACTUAL = Decimal("0.0025")
PRICE = 'price "m" { input $100/1M  output $200/1M }\n'


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("end")
    yield server
    server.close()


def pipeline(url: str, modules: str, cap: str = "daily $1") -> str:
    return (
        provider("up", url)
        + PRICE
        + 'route chat {\n  path /v1/chat/completions\n  models "m"\n  chain up\n'
        + (f"  cap {cap} per project\n" if "cost_cap" in modules else "")
        + f"  modules [{modules}]\n}}\n"
    )


def checked(text: str) -> Any:
    result = check({"main.pipe": text}, CheckOptions(check_env=False))
    assert result.generation is not None, [str(d) for d in result.errors]
    return result.generation


def ledger_requests(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT detail FROM ledger WHERE type = 'request' ORDER BY seq")
        return [json.loads(detail) for (detail,) in rows]


def trace_rows(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in conn.execute("SELECT * FROM traces")}


# --- the sequence itself, in process ------------------------------------------------------------


def test_phases_run_in_order_after_spend_and_before_metrics(tmp_path: Path) -> None:
    """Hooks run by phase whatever order modules declared them in (declaration order within a
    phase); the spend counters already hold the cost when SETTLE runs; a failing hook is
    logged and the others (and metrics) still run."""
    generation = checked(pipeline("http://127.0.0.1:9", "trace"))
    route = generation.routes[0]

    async def scenario() -> tuple[list[str], int, Services]:
        store = Store(tmp_path / "end.db")
        await store.open()
        services = Services(store=store)
        ending = Ending(services)
        ctx = RequestContext(
            id=new_trace_id(), method="POST", path="/v1/chat/completions", headers={},
            client_ip="127.0.0.1", raw_body=b"{}", body={}, generation=generation, route=route,
            model="m", stream=False,
        )  # fmt: skip
        ctx.cost = ACTUAL
        ran: list[str] = []
        spent_at_settle: list[int] = []

        def hook(name: str, fail: bool = False) -> Any:
            async def run(done: RequestContext) -> None:
                ran.append(name)
                if name == "settle":
                    spent_at_settle.append(store.spend.spent("project", "default", _day(done))[0])
                if fail:
                    raise RuntimeError(f"{name} failed")

            return run

        ctx.on_end(Phase.AUDIT, hook("audit"))
        ctx.on_end(Phase.TRACE, hook("trace", fail=True))
        ctx.on_end(Phase.KEEP, hook("keep"))
        ctx.on_end(Phase.SETTLE, hook("settle"))
        ctx.on_end(Phase.SETTLE, hook("settle-2", fail=True))
        ctx.on_end(Phase.AUDIT, hook("audit-2"))
        await ending.run(ctx, GatewayResponse(200, {}, b"{}"), {})
        assert ending.in_flight == 0 and await ending.drained(0)
        await store.close()
        return ran, spent_at_settle[0], services

    ran, spent, services = asyncio.run(scenario())
    assert ran == ["settle", "settle-2", "keep", "trace", "audit", "audit-2"]
    assert spent == 2_500_000_000  # pico-dollars: counted before the reservation is settled
    assert services.metrics.latency_count == 1  # metrics ran after the failing hooks


def _day(ctx: RequestContext) -> str:
    from stockyard.store.spend import utc_day

    return utc_day(ctx.started_at)


def test_router_matches_like_the_generation_and_check_compiles_no_regex(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        provider("up", "http://127.0.0.1:9")
        + 'route a {\n  path /v1/chat/completions\n  models "gpt-4o*", "o?"\n  chain up\n}\n'
        + 'route b {\n  path /v1/chat/completions, /v1/embeddings\n  models "a+b(c)"\n'
        + "  chain up\n}\n"
        + "route rest {\n  path /v1/chat/completions\n  chain up\n}\n"
    )
    compiled: list[tuple[str, ...]] = []
    original = generation_module.glob_regex

    def counting(patterns: tuple[str, ...]) -> Any:
        compiled.append(patterns)
        return original(patterns)

    monkeypatch.setattr("stockyard.runtime.router.glob_regex", counting)
    monkeypatch.setattr(generation_module, "glob_regex", counting)
    generation = checked(text)
    assert compiled == []  # `stockyard check` (and compile) build no pattern
    router = Router(generation)
    # once per route with patterns, not once per path
    assert sorted(p for p in compiled if p) == [("a+b(c)",), ("gpt-4o*", "o?")]
    cases = [
        ("/v1/chat/completions", "gpt-4o-mini"),
        ("/v1/chat/completions", "o1"),
        ("/v1/chat/completions", "o12"),
        ("/v1/chat/completions", "a+b(c)"),
        ("/v1/chat/completions", "aab(c)"),
        ("/v1/embeddings", "a+b(c)"),
        ("/v1/embeddings", "other"),
        ("/v1/completions", "gpt-4o"),
    ]
    for path, model in cases:
        assert router.route_for(path, model) == generation.route_for(path, model), (path, model)
    assert router.route_for("/v1/chat/completions", "o12").name == "rest"  # type: ignore[union-attr]
    assert router.route_for("/v1/embeddings", "other") is None


# --- through the gateway ------------------------------------------------------------------------


def test_a_failing_trace_write_keeps_neither_audit_nor_the_release_from_happening(
    tmp_path: Path, up: Upstream
) -> None:
    """The gateway in process (the real ASGI app, a real upstream, a real store) with a trace
    write that fails: the caller is answered, the reservation is released, the spend and the
    ledger event are recorded and the request is counted in the metrics."""
    up.reset()
    generation = checked(pipeline(up.url, "trace, audit, cost_cap"))
    db = tmp_path / "gateway.db"

    async def scenario() -> tuple[list[int], Services]:
        store = Store(db)
        await store.open()
        services = Services(store=store)

        async def broken(row: tuple[Any, ...]) -> None:
            raise OSError("disk full")

        store.add_trace = broken  # type: ignore[method-assign]  # the failure under test
        active = activate(generation, services)
        app = AsgiGateway(lambda: active, 1 << 20, services)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI callable
        statuses = []
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for stream in (False, True):
                response = await client.post(
                    "/v1/chat/completions",
                    json={"model": "m", "messages": MESSAGES, "max_tokens": 10, "stream": stream},
                )
                statuses.append(response.status_code)
        await app.ending.drained(5)
        reservations = services.shared("cost_cap", Reservations)
        assert reservations.in_flight == 0 and not reservations.daily, reservations
        await store.close()
        return statuses, services

    statuses, services = asyncio.run(scenario())
    assert statuses == [200, 200]
    events = ledger_requests(db)
    assert [e["status"] for e in events] == [200, 200]
    assert [e["stream"] for e in events] == [False, True]
    assert events[0]["cost"] == "0.0025"
    assert trace_rows(db) == {}  # the trace write did fail
    assert services.metrics.requests[("chat", "up", 200)] == 2
    with sqlite3.connect(db) as conn:
        (requests,) = conn.execute("SELECT SUM(requests) FROM spend_daily").fetchone()
    assert requests == 2


def test_the_trace_shows_what_was_settled_before_it(tmp_path: Path, up: Upstream) -> None:
    """Through the real server: cost_cap's reservation and rate_limit's token estimate are
    settled before the trace row is written (it shows both), and the ledger agrees on the cost."""
    up.reset()
    modules = "trace, audit, rate_limit(tokens: 100000/min), cost_cap"
    with running_gateway(tmp_path, {"main.pipe": pipeline(up.url, modules)}) as gw:
        for stream in (False, True):
            with httpx.stream(
                "POST",
                f"{gw.url}/v1/chat/completions",
                json={"model": "m", "messages": MESSAGES, "max_tokens": 10, "stream": stream},
                timeout=20,
            ) as response:
                assert response.status_code == 200
                response.read()
                trace = gw.trace(response.headers["x-stockyard-trace-id"])
            notes = trace["notes"]
            assert Decimal(trace["cost"]) == ACTUAL
            assert Decimal(notes["cost_cap"]["settled"]) == ACTUAL
            assert Decimal(notes["cost_cap"]["reserved"]) > ACTUAL
            assert notes["rate_limit"]["tokens_actual"] == 18
            assert "blocked_by" not in notes and "disconnected" not in notes
    events = ledger_requests(tmp_path / "stockyard.db")
    assert [e["cost"] for e in events] == ["0.0025", "0.0025"]


def test_a_refusal_is_traced_with_the_module_that_refused(tmp_path: Path, up: Upstream) -> None:
    up.reset()
    text = pipeline(up.url, "trace, audit, cost_cap", cap="daily $0.001")
    with running_gateway(tmp_path, {"main.pipe": text}) as gw:
        response = gw.api(
            "POST",
            "/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "max_tokens": 10},
        )
        assert response.status_code == 429
        trace = gw.trace(response.headers["x-stockyard-trace-id"])
        assert trace["notes"]["blocked_by"] == "cost_cap"
        assert trace["status"] == 429 and Decimal(trace["cost"]) == 0
    assert up.count == 0


def test_a_stream_cut_by_shutdown_is_still_recorded(tmp_path: Path, up: Upstream) -> None:
    """SIGTERM with a 1 s grace period while a 10 s stream runs: the server tears the request
    down, and its end still runs before the store closes — trace, ledger event and spend."""
    up.reset()
    up.script = [Behaviour(words=100, chunk_delay=0.1)]
    text = pipeline(up.url, "trace, audit")
    with running_gateway(tmp_path, {"main.pipe": text}, env={"STOCKYARD_GRACE": "1"}) as gw:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=15) as resp:
            trace_id = resp.headers["x-stockyard-trace-id"]
            lines = resp.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            gw.send_signal(signal.SIGTERM)
            assert gw.process is not None
            assert gw.process.wait(15) == 0, gw.log()[-2000:]
    db = tmp_path / "stockyard.db"
    rows = trace_rows(db)
    assert trace_id in rows, gw.log()[-2000:]
    assert rows[trace_id]["stream"] == 1
    assert [e["trace_id"] for e in ledger_requests(db)] == [trace_id]
    with sqlite3.connect(db) as conn:
        (requests,) = conn.execute("SELECT SUM(requests) FROM spend_daily").fetchone()
    assert requests == 1


def test_a_stream_never_sent_is_still_closed_and_its_end_runs(tmp_path: Path) -> None:
    """The caller's connection fails before the stream's first byte is sent: the stream is
    closed (stopping the upstream) and ``on_close`` runs as the sequence's first step, then
    the hooks — in the gateway, not left to whoever happened to be iterating the stream."""
    generation = checked(pipeline("http://127.0.0.1:9", "trace"))
    events: list[str] = []

    class Chunks:  # an upstream stream: closing it stops the upstream
        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            return b"data: {}\n\n"

        async def aclose(self) -> None:
            events.append("stream closed")

    async def handler(ctx: RequestContext) -> GatewayResponse:
        async def hook(done: RequestContext) -> None:
            events.append(f"trace hook, status {done.status}")

        ctx.on_end(Phase.TRACE, hook)
        response = GatewayResponse(200, {"content-type": "text/event-stream"}, stream=Chunks())
        response.on_close.append(lambda: events.append("on_close"))
        return response

    async def scenario() -> None:
        store = Store(tmp_path / "gw.db")
        await store.open()
        services = Services(store=store)
        active = ActiveGeneration(generation, Router(generation), {"chat": handler}, {}, {})
        app = AsgiGateway(lambda: active, 1 << 20, services)
        body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
        sent = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if sent:
                return sent.pop()
            await asyncio.sleep(3600)  # the caller never hangs up
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            raise ConnectionResetError("the caller's socket is gone")

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "headers": [], "client": ("127.0.0.1", 1)}  # fmt: skip
        with pytest.raises(ConnectionResetError):
            await app(scope, receive, send)
        assert app.ending.in_flight == 0
        await store.close()

    asyncio.run(scenario())
    assert events == ["stream closed", "on_close", "trace hook, status 200"]


def test_drained_waits_for_the_sequences_in_flight(tmp_path: Path) -> None:
    generation = checked(pipeline("http://127.0.0.1:9", "trace"))
    route = generation.routes[0]

    async def scenario() -> list[str]:
        store = Store(tmp_path / "drain.db")
        await store.open()
        ending = Ending(Services(store=store))
        release = asyncio.Event()
        seen: list[str] = []

        async def slow(done: RequestContext) -> None:
            await release.wait()
            seen.append("hook done")

        for _ in range(2):  # twice: a second drain must not see the first one's event
            ctx = RequestContext(
                id=new_trace_id(), method="POST", path="/v1/chat/completions", headers={},
                client_ip="", raw_body=b"{}", body={}, generation=generation, route=route,
                model="m", stream=False,
            )  # fmt: skip
            ctx.on_end(Phase.AUDIT, slow)
            running = asyncio.ensure_future(ending.run(ctx, None, {}))
            await asyncio.sleep(0.01)
            assert ending.in_flight == 1
            assert not await ending.drained(0.05)
            release.set()
            assert await ending.drained(5)
            seen.append("drained")
            await running
            release.clear()
        await store.close()
        return seen

    assert asyncio.run(scenario()) == ["hook done", "drained"] * 2
