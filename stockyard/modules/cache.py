"""``cache``: exact-match response cache, scoped per project, replayed for streams too.

**Key.** SHA-256 of the canonical JSON (sorted keys, compact) of: the route, the endpoint path,
the project, the model as the chain sees it here (after any alias), ``stream``, and every body
field except those that cannot change the answer (:data:`IGNORED`: ``user``, ``metadata``, …).
That is a deny-list on purpose: a generation parameter this file does not know about (a new
OpenAI field) still makes a different key — an extra miss, never a wrong answer. Integral
floats at the top level count as integers (``"temperature": 1.0`` and ``1`` are one key).
``stream_options`` counts only for streams (it decides whether the usage chunk is sent).

**Streams.** Streamed and non-streamed requests never share an entry: ``stream`` is part of the
key. A streamed answer is stored as the SSE bytes the caller received and replayed one event per
chunk; a non-streamed answer as its JSON body. Only complete successes are stored: status 200,
no error, and for a stream, the stream ended normally (not cut, not abandoned by the caller, no
error event; chat/completions and completions streams must end with ``[DONE]``).

**Cost.** An entry is kept in the ``KEEP`` phase of the end-of-request sequence
(:mod:`stockyard.runtime.end`), after the request has ended and its cost is settled, so the entry carries what the original request cost. A hit costs 0 and is traced with
``cache: hit`` and ``notes.cost_saved`` (that stored cost, a decimal string; null when the
original cost was unknown).

**Writes.** Every write (new entries, hit counts and ``last_hit`` for LRU, the counters) goes
through the store's single writer (``Store.call``), coalesced: at most one flush is waiting at a
time and it takes everything pending when the writer runs it. Entries not yet committed are
served from memory, so a repeat that arrives before the writer commits is a hit too.
``max_entries`` is per route: after a flush that added entries to a route, expired rows are
dropped and the route's least recently used entries (by ``last_hit``) beyond the limit go.

**Counters.** Hits, misses, stored answers and cost saved are kept per (project, route) in the
``cache_stats`` table: they survive restarts, ``DELETE /api/cache`` and eviction. Deltas wait in
memory only until the next flush (milliseconds); ``GET /api/cache/stats`` flushes them first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..core.context import Phase, RequestContext
from ..core.response import GatewayResponse
from ..core.sse import DONE, parse_event, split_events
from ..dsl.schema import SERVES, Param, frozen_map
from ..dsl.value_types import Boolean, Duration, Integer
from ..store.money import dollars_text, to_pico
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

if TYPE_CHECKING:  # the store loads aiosqlite: `stockyard check` never needs it
    from ..store.database import Store

log = logging.getLogger("stockyard.cache")
T = TypeVar("T")

# Body fields that never change what the model answers (who asked, what to keep, hints).
IGNORED = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "safety_identifier",
     "prompt_cache_key", "prompt_cache_retention", "service_tier"}
)  # fmt: skip
MAX_ENTRY_BYTES = 8 * 1024 * 1024  # larger answers are passed on, not stored
_ERROR_DATA = re.compile(rb'\s*\{\s*"error"\s*:')  # an event whose data is an error object
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_INSERT = (
    "INSERT OR REPLACE INTO cache (key, project, route, model, stream, status, content_type, "
    "body, prompt_tokens, completion_tokens, cost_pico, created_at, expires_at, last_hit, hits) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
_TOUCH = "UPDATE cache SET hits = hits + ?, last_hit = MAX(last_hit, ?) WHERE key = ?"
_STATS = (
    "INSERT INTO cache_stats (project, route, hits, misses, stored, saved_pico, saved_unknown) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project, route) DO UPDATE SET "
    "hits = hits + excluded.hits, misses = misses + excluded.misses, "
    "stored = stored + excluded.stored, saved_pico = saved_pico + excluded.saved_pico, "
    "saved_unknown = saved_unknown + excluded.saved_unknown"
)
_LOOKUP = (
    "SELECT status, content_type, body, cost_pico, created_at FROM cache "
    "WHERE key = ? AND expires_at > ?"
)


def cache_key(ctx: RequestContext) -> str:
    """The entry key of a request as the chain sees it at this point."""
    body = ctx.body
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in IGNORED:
            continue
        if type(value) is float and value.is_integer():
            value = int(value)
        fields[name] = value
    fields["model"] = ctx.model
    canonical: dict[str, Any] = {
        "route": ctx.route.name,
        "path": ctx.path,
        "project": ctx.project,
        "stream": ctx.stream,
        "body": fields,
    }
    if ctx.stream:
        canonical["stream_options"] = body.get("stream_options")
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class Entry:
    key: str
    project: str
    route: str
    model: str
    stream: bool
    status: int
    content_type: str
    body: bytes
    prompt_tokens: int
    completion_tokens: int
    cost_pico: int | None
    created_at: float
    expires_at: float

    def row(self) -> tuple[Any, ...]:
        return (
            self.key, self.project, self.route, self.model, int(self.stream), self.status,
            self.content_type, self.body, self.prompt_tokens, self.completion_tokens,
            self.cost_pico, self.created_at, self.expires_at, self.created_at,
        )  # fmt: skip


@dataclass(slots=True)
class Counts:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    saved_pico: int = 0
    saved_unknown: int = 0


@dataclass
class Pending:
    """Everything one flush writes, taken from the cache state when the writer runs it."""

    inserts: dict[str, Entry] = field(default_factory=dict)
    touches: dict[str, list[float]] = field(default_factory=dict)  # key -> [hits, last_hit]
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)  # route -> max_entries

    def empty(self) -> bool:
        return not (self.inserts or self.touches or self.counts)


class CacheState:
    """Shared by every route and generation (a reload keeps it): pending writes and the entries
    written but not yet committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pending = Pending()
        self.inflight: dict[str, Entry] = {}  # taken by a flush, not yet committed
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the request path -------------------------------------------------------------------

    def recent(self, key: str) -> Entry | None:
        return self.pending.inserts.get(key) or self.inflight.get(key)

    def _counts(self, project: str, route: str) -> Counts:
        counts = self.pending.counts.get((project, route))
        if counts is None:
            counts = self.pending.counts[(project, route)] = Counts()
        return counts

    def hit(self, key: str, project: str, route: str, cost_pico: int | None, now: float) -> None:
        counts = self._counts(project, route)
        counts.hits += 1
        if cost_pico is None:
            counts.saved_unknown += 1
        else:
            counts.saved_pico += cost_pico
        touch = self.pending.touches.get(key)
        if touch is None:
            self.pending.touches[key] = [1, now]
        else:
            touch[0] += 1
            touch[1] = now
        self._schedule()

    def miss(self, project: str, route: str) -> None:
        self._counts(project, route).misses += 1
        self._schedule()

    def add(self, entry: Entry, max_entries: int) -> None:
        self.pending.inserts[entry.key] = entry
        self.pending.limits[entry.route] = max_entries
        self._counts(entry.project, entry.route).stored += 1
        self._schedule()

    # --- the writer -------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Write everything pending (a background task: failures are logged)."""
        try:
            await self.write()
        except Exception:
            log.exception("writing the cache failed")

    async def write(self, after: Callable[[Any], Awaitable[T]] | None = None) -> T | None:
        """Write everything pending through the store's writer, then ``after(connection)`` in
        the same transaction; returns its result once committed."""
        taken: list[Pending] = []

        async def work(conn: Any) -> T | None:
            if not taken:  # the writer retries a failed batch: write the same rows again
                taken.append(self._take())
            await _write(conn, taken[0])
            return await after(conn) if after is not None else None

        try:
            return await self.store.call(work)
        finally:
            if taken:
                for key, entry in taken[0].inserts.items():
                    if self.inflight.get(key) is entry:
                        del self.inflight[key]

    def _take(self) -> Pending:
        self._scheduled = False
        pending, self.pending = self.pending, Pending()
        self.inflight.update(pending.inserts)
        return pending


async def _write(conn: Any, pending: Pending) -> None:
    if pending.empty():
        return
    now = time.time()
    if pending.inserts:
        await conn.executemany(_INSERT, [e.row() for e in pending.inserts.values()])
    if pending.touches:
        await conn.executemany(_TOUCH, [(n, at, key) for key, (n, at) in pending.touches.items()])
    if pending.counts:
        await conn.executemany(
            _STATS,
            [(p, r, c.hits, c.misses, c.stored, c.saved_pico, c.saved_unknown)
             for (p, r), c in pending.counts.items()],
        )  # fmt: skip
    if pending.inserts:
        await conn.execute("DELETE FROM cache WHERE expires_at <= ?", (now,))
        for route, limit in pending.limits.items():
            async with conn.execute("SELECT COUNT(*) FROM cache WHERE route = ?", (route,)) as cur:
                row = await cur.fetchone()
            excess = (row[0] if row else 0) - limit
            if excess > 0:
                await conn.execute(
                    "DELETE FROM cache WHERE key IN (SELECT key FROM cache WHERE route = ? "
                    "ORDER BY last_hit, created_at LIMIT ?)",
                    (route, excess),
                )


def state(services: ModuleServices) -> CacheState:
    """The process's cache state (shared with the admin API)."""
    return services.shared("cache", lambda: CacheState(services.store))


# --- the module ---------------------------------------------------------------------------------


def _stream_complete(body: bytes, path: str) -> bool:
    events = split_events(body)
    for raw in events:
        if b'"error"' in raw:  # cheap test first: only these can be error events
            data = parse_event(raw).data
            if data is not None and _ERROR_DATA.match(data):
                return False
    if path.endswith(("/chat/completions", "/completions")):
        return bool(events) and parse_event(events[-1]).data == DONE
    return True


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    """The stored SSE bytes, one event per chunk, as they were first sent."""
    for raw in split_events(body):
        yield raw


class _Tee:
    """Pass a stream through, keeping a copy while it stays under the size limit."""

    __slots__ = ("complete", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] | None = []
        self.size = 0
        self.complete = False

    async def run(self, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in source:
                if self.parts is not None:
                    self.size += len(chunk)
                    if self.size > MAX_ENTRY_BYTES:
                        self.parts = None
                    else:
                        self.parts.append(chunk)
                yield chunk
            self.complete = True
        finally:
            closer = getattr(source, "aclose", None)
            if closer is not None:
                await closer()


def create(params: Params, services: ModuleServices) -> Module:
    ttl = float(params["ttl"])
    max_entries = int(params["max_entries"])
    streams = bool(params["streams"])
    store = services.store
    shared = state(services)

    async def find(key: str, now: float) -> tuple[int, str, bytes, int | None] | None:
        """(status, content type, body, original cost) of a fresh entry, or None."""
        entry = shared.recent(key)
        if entry is not None:
            if entry.expires_at > now and entry.created_at > now - ttl:
                return entry.status, entry.content_type, entry.body, entry.cost_pico
            return None
        rows = await store.query(_LOOKUP, (key, now))
        if not rows or rows[0]["created_at"] <= now - ttl:  # a lowered ttl applies at once
            return None
        row = rows[0]
        return row["status"], row["content_type"], bytes(row["body"]), row["cost_pico"]

    async def cache(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        if ctx.stream and not streams:
            return await call_next(ctx)
        try:
            key = cache_key(ctx)
        except TypeError:  # a module before this one put something JSON cannot hold in the body
            ctx.notes["cache"] = "bypassed: the request has no canonical JSON form"
            return await call_next(ctx)
        project, route = ctx.project, ctx.route.name
        now = time.time()
        found = await find(key, now)
        if found is not None:
            status, content_type, body, cost_pico = found
            shared.hit(key, project, route, cost_pico, now)
            ctx.cache = "hit"
            ctx.cost = Decimal(0)
            ctx.notes["cost_saved"] = dollars_text(cost_pico)
            if ctx.stream:
                ctx.first_token_ms = ctx.elapsed_ms()
                return GatewayResponse(status, dict(_SSE_HEADERS), stream=_replay(body))
            return GatewayResponse(status, {"content-type": content_type}, body)
        ctx.cache = "miss"
        shared.miss(project, route)
        response = await call_next(ctx)
        if response.status != 200:
            return response
        content_type = response.headers.get("content-type", "application/json")
        if response.stream is None:
            if len(response.body) > MAX_ENTRY_BYTES or not response.body:
                return response
            answer = response.body

            async def keep(ctx: RequestContext) -> None:
                if ctx.error is None and ctx.status == 200:
                    _add(ctx, key, answer, content_type)

            ctx.on_end(Phase.KEEP, keep)
            return response
        tee = _Tee()
        response.stream = tee.run(response.stream)

        async def keep_stream(ctx: RequestContext) -> None:
            if not tee.complete or tee.parts is None or ctx.error is not None or ctx.status != 200:
                return
            answer = b"".join(tee.parts)
            if answer and _stream_complete(answer, ctx.path):
                _add(ctx, key, answer, "text/event-stream")

        ctx.on_end(Phase.KEEP, keep_stream)
        return response

    def _add(ctx: RequestContext, key: str, body: bytes, content_type: str) -> None:
        try:
            created = time.time()
            shared.add(
                Entry(
                    key,
                    ctx.project,
                    ctx.route.name,
                    ctx.served_model or ctx.model,
                    ctx.stream,
                    200,
                    content_type,
                    body,
                    ctx.usage.prompt_tokens,
                    ctx.usage.completion_tokens,
                    to_pico(ctx.cost) if ctx.cost is not None else None,
                    created,
                    created + ttl,
                ),
                max_entries,
            )
        except Exception:  # logged here: a cache failure is not the request's
            log.exception("caching the answer of request %s failed", ctx.id)

    return cache


SPEC = ModuleDefinition(
    name="cache",
    doc="Answer repeated identical requests from the cache (x-stockyard-cache: hit).",
    params=frozen_map(
        {
            "ttl": Param(
                Duration("1s", "365d"),
                "How long an answer stays fresh.",
                default=3600.0,
                example="10m",
            ),
            "max_entries": Param(
                Integer(1, 100_000_000),
                "Entries kept; the least recently used go first.",
                default=10_000,
                example="50000",
            ),
            "streams": Param(
                Boolean(),
                "Also cache streamed answers (replayed as SSE).",
                default=True,
                example="false",
            ),
        }
    ),
    roles=frozenset({SERVES}),
    create=create,
)
