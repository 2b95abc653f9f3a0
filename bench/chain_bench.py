"""Per-request cost of a route's compiled module chain, without network or HTTP.

Builds a generation whose route runs every module (or the default [trace, audit], or none)
in front of the in-process `mock` provider, then calls the route's handler and the
end-of-request sequence (`stockyard.runtime.end`: close, usage, cost, spend, the modules'
hooks, metrics) N times in one event loop. The store is
real (a temporary SQLite file, one writer task), so trace/audit/cache rows are really queued.

    python bench/chain_bench.py [--requests 20000] [--stream]

Prints microseconds per request for each module set and the difference to the bare chain.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

import orjson

from stockyard.catalog import check
from stockyard.core.context import RequestContext, new_trace_id
from stockyard.dsl import CheckOptions
from stockyard.runtime.end import Ending
from stockyard.runtime.pipeline import activate
from stockyard.runtime.services import Services
from stockyard.store.database import Store

MODULE_SETS = {
    "none": "",
    "default": "trace, audit",
    "all": (
        'trace, audit, ip_allow(allow: ["127.0.0.0/8"]), auth, rate_limit(requests: 1000000/s), '
        'prompt_guard, redact, model_alias(map: ["fast" -> "mock-mini"]), max_tokens(limit: 4096), '
        'cost_cap, cache(ttl: 1h), headers(set: ["X-Team" -> "bench"])'
    ),
}
# The cache is the one module that waits on SQLite per request (a lookup through aiosqlite's
# thread); measured apart, the rest of the chain's CPU shows.
MODULE_SETS["all-but-cache"] = MODULE_SETS["all"].replace("cache(ttl: 1h), ", "")


def pipeline(modules: str) -> str:
    cap = "  cap daily $1000000 per project\n" if "cost_cap" in modules else ""
    return (
        "provider sim { kind mock }\n"
        'price "mock-mini" { input $0.15/1M  output $0.60/1M }\n'
        'route chat {\n  path /v1/chat/completions\n  models "mock-mini", "fast"\n  chain sim\n'
        f"{cap}  modules [{modules}]\n}}\n"
    )


async def run(modules: str, requests: int, stream: bool, directory: Path) -> float:
    result = check({"bench.pipe": pipeline(modules)}, CheckOptions(check_env=False))
    assert result.generation is not None, [str(d) for d in result.errors]
    store = Store(directory / f"{abs(hash(modules))}.db")
    await store.open()
    services = Services(store=store)
    key = None
    if "auth" in modules:
        key, _record = await services.keys.create(store, "bench", "bench", [], [], None, "bench")
    active = activate(result.generation, services)
    generation = active.generation
    route = generation.routes[0]
    handler = active.handlers[route.name]
    ending = Ending(services)
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"

    async def one(index: int) -> None:
        # a different prompt each time: the cache misses, as most real traffic does
        body = {
            "model": "mock-mini",
            "stream": stream,
            "messages": [
                {"role": "user", "content": f"hello number {index}, write me@example.com"}
            ],
        }
        raw = orjson.dumps(body)
        ctx = RequestContext(
            id=new_trace_id(),
            method="POST",
            path="/v1/chat/completions",
            headers=dict(headers),
            client_ip="127.0.0.1",
            raw_body=raw,
            body=body,
            generation=generation,
            route=route,
            model="mock-mini",
            stream=stream,
        )
        response = await handler(ctx)
        if response.stream is not None:
            async for _chunk in response.stream:
                pass
        await ending.run(ctx, response, active.prices)

    for index in range(200):  # warm up
        await one(-index)
    gc.collect()
    started = time.perf_counter()
    for index in range(requests):
        await one(index)
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--stream", action="store_true", help="streamed requests (mock SSE)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            name: asyncio.run(run(mods, args.requests, args.stream, Path(tmp)))
            for name, mods in MODULE_SETS.items()
        }
    base = results["none"]
    print(
        f"{'modules':<10} {'µs/request':>12} {'vs none':>10}   ({args.requests} requests, "
        f"{'stream' if args.stream else 'non-stream'}, mock provider, no network)"
    )
    for name, micros in results.items():
        print(f"{name:<10} {micros:>12.1f} {micros - base:>+10.1f}")


if __name__ == "__main__":
    main()
