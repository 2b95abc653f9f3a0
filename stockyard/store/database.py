"""The SQLite store: one file (WAL), one writer task that batches, separate reader connection.

Requests never wait on disk: they enqueue rows; the writer commits a batch every
``flush_interval`` (or sooner, when ``batch_size`` rows are waiting). When the queue is full the
caller waits for room (back-pressure), and that is counted.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .ledger import COLUMNS, Chain, Verifier, now_iso
from .schema import LATEST, MIGRATIONS
from .spend import SpendCounters

log = logging.getLogger("stockyard.store")

TRACE_COLUMNS = (
    "id", "ts", "route", "project", "key_id", "path", "model", "served_model", "provider",
    "status", "error", "stream", "cache", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "cost_pico", "priced", "latency_ms", "ttft_ms", "overhead_ms", "attempts",
    "notes", "request_body", "response_body",
)  # fmt: skip
SPEND_KEY = ("day", "project", "key_id", "route", "model", "provider")
SPEND_VALUES = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_pico",
    "unpriced",
)

_INSERT_TRACE = f"INSERT OR REPLACE INTO traces ({', '.join(TRACE_COLUMNS)}) VALUES ({', '.join('?' * len(TRACE_COLUMNS))})"
_UPSERT_SPEND = (
    f"INSERT INTO spend_daily ({', '.join(SPEND_KEY + SPEND_VALUES)}) "
    f"VALUES ({', '.join('?' * (len(SPEND_KEY) + len(SPEND_VALUES)))}) "
    f"ON CONFLICT ({', '.join(SPEND_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in SPEND_VALUES)
)
# Errors caused by a record's content, not by the database's state.
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
)

_INSERT_EVENT = (
    f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)

T = TypeVar("T")


class SchemaTooNew(RuntimeError):
    """The database was written by a newer Stockyard: opening it could lose data."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a database up to the latest schema; returns the version it was at.

    Each migration runs in its own IMMEDIATE transaction, so two processes opening a fresh file
    at once (a gateway and the CLI) cannot both apply it: the second waits, finds the tables
    there, and moves on.
    """
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST:
        path = conn.execute("PRAGMA database_list").fetchone()[2] or "the database"
        raise SchemaTooNew(
            f"{path}: database schema version {version} is newer than this Stockyard supports "
            f"({LATEST}); upgrade Stockyard, or point --db at another file"
        )
    for number, script in MIGRATIONS:
        if number > version:
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            except sqlite3.OperationalError:
                if conn.in_transaction:
                    conn.rollback()
                if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue  # another process applied it first
                raise
    return version


def _use_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch the file to WAL (a no-op once it is). Switching needs the file to itself, and
    SQLite answers "locked" at once rather than wait when another process opening the same
    fresh file holds it, so wait here, briefly."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.02)


def connect_sync(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA busy_timeout=5000")
    _use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    migrate(conn)
    return conn


class Store:
    def __init__(
        self,
        path: Path | str,
        *,
        flush_interval: float = 0.05,
        batch_size: int = 1000,
        max_queue: int = 20_000,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(max_queue)
        self.chain = Chain()
        self.spend = SpendCounters()
        self.waits = 0  # times a producer had to wait for room (back-pressure)
        self.written = 0
        self.failed_batches = 0
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self.dropped = 0  # records lost to write failures (bad rows, a full disk)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._batch_ready = asyncio.Event()  # batch_size rows are waiting: flush now

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(lambda: connect_sync(self.path).close())  # create + migrate
        self._writer = await aiosqlite.connect(str(self.path))
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute("PRAGMA synchronous=NORMAL")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        self._reader = await aiosqlite.connect(str(self.path))
        await self._reader.execute("PRAGMA busy_timeout=5000")
        # Set once: readers share this connection, so a per-query switch would race.
        self._reader.row_factory = sqlite3.Row
        async with self._writer.execute(
            "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1"
        ) as cursor:
            row = await cursor.fetchone()
        if row:
            self.chain = Chain(row[0], row[1])
        await self.spend.load(self._reader)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stockyard-writer")

    async def close(self) -> None:
        """Flush everything queued, then close. Nothing enqueued before this is lost."""
        self._closing = True
        self._batch_ready.set()
        if self._task is not None:
            await self.queue.put(("stop", None))
            await self._task
            self._task = None
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    # --- producers (the request path) -------------------------------------------------------

    async def put(self, kind: str, item: Any) -> None:
        queue = self.queue
        try:
            queue.put_nowait((kind, item))
        except asyncio.QueueFull:
            self.waits += 1
            self._batch_ready.set()
            await queue.put((kind, item))
        if queue.qsize() + 1 >= self.batch_size:  # + the row the writer holds while it waits
            self._batch_ready.set()

    async def add_trace(self, row: tuple[Any, ...]) -> None:
        await self.put("trace", row)

    async def add_spend(self, key: tuple[str, ...], values: tuple[int, ...]) -> None:
        await self.put("spend", (key, values))

    async def call(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``work(connection)`` inside the writer, in order with queued rows, committed with
        them. For the rare admin writes (keys, toggles) that must be durable before answering."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self.put("call", (work, future))
        return await future

    async def add_event(
        self, type_: str, actor: str, resource: str, action: str, detail: dict[str, Any]
    ) -> None:
        # the time is taken now, when it happened, not when the writer gets to it
        await self.put("event", (type_, actor, resource, action, detail, now_iso()))

    # --- the writer -------------------------------------------------------------------------

    async def _run(self) -> None:
        stop = False
        queue = self.queue
        while not stop:
            first = await queue.get()
            batch = [first]
            if first[0] != "stop" and not self._closing and queue.qsize() + 1 < self.batch_size:
                # let a batch gather: flush after flush_interval, or as soon as batch_size
                # rows wait, whichever comes first
                self._batch_ready.clear()
                try:
                    await asyncio.wait_for(self._batch_ready.wait(), self.flush_interval)
                except TimeoutError:
                    pass
            while len(batch) < self.batch_size:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            stop = any(kind == "stop" for kind, _ in batch)
            await self._write_safely([b for b in batch if b[0] != "stop"])
            if stop:  # drain anything that raced in before the stop marker was seen
                rest = []
                while not queue.empty():
                    item = queue.get_nowait()
                    if item[0] != "stop":
                        rest.append(item)
                for start in range(0, len(rest), self.batch_size):
                    await self._write_safely(rest[start : start + self.batch_size])

    async def _write_safely(self, batch: list[tuple[str, Any]]) -> None:
        """Write a batch; if a bad record spoils it, write the others one by one. The writer
        task never dies: a dead writer would stop all recording and then, once the queue is
        full, every request."""
        try:
            outcome = await self._write(batch)
            if outcome == "bad" and len(batch) > 1:
                log.warning("writing the %d records of a failed batch one by one", len(batch))
                for item in batch:
                    if await self._write([item]) != "ok":
                        self.dropped += 1
                        log.error("dropped a %s record that cannot be written", item[0])
            elif outcome != "ok":
                self.dropped += len(batch)
        except Exception:
            self.failed_batches += 1
            self.dropped += len(batch)
            log.exception("the store writer failed on a batch of %d records", len(batch))

    async def _write(self, batch: list[tuple[str, Any]]) -> str:
        """One transaction for the whole batch: ``ok`` (committed), ``bad`` (a record's content
        was refused: retrying the same batch cannot help) or ``failed`` (after retries)."""
        if not batch:
            return "ok"
        traces = [item for kind, item in batch if kind == "trace"]
        spend: dict[tuple[str, ...], list[int]] = {}
        for kind, item in batch:
            if kind == "spend":
                key, values = item
                total = spend.setdefault(key, [0] * len(SPEND_VALUES))
                for i, v in enumerate(values):
                    total[i] += v
        pending_events = [item for kind, item in batch if kind == "event"]
        calls = [item for kind, item in batch if kind == "call"]
        conn = self._writer
        assert conn is not None
        for attempt in range(3):
            results: list[Any] = []
            try:
                # IMMEDIATE: no other process (a CLI, a second gateway) can append between
                # reading the ledger head and linking these events to it.
                await conn.execute("BEGIN IMMEDIATE")
                events = await self._link(conn, pending_events) if pending_events else []
                for work, _future in calls:
                    results.append(await work(conn))
                if traces:
                    await conn.executemany(_INSERT_TRACE, traces)
                if spend:
                    await conn.executemany(_UPSERT_SPEND, [(*k, *v) for k, v in spend.items()])
                if events:
                    await conn.executemany(_INSERT_EVENT, events)
                await conn.commit()
                self.written += len(batch)
                for (_work, future), result in zip(calls, results):
                    if not future.done():
                        future.set_result(result)
                return "ok"
            except (sqlite3.Error, OverflowError) as error:  # OverflowError: beyond 64 bits
                await conn.rollback()
                log.error("store write failed (attempt %d): %s", attempt + 1, error)
                if isinstance(error, _DATA_ERRORS):
                    if len(batch) > 1:
                        return "bad"  # the caller writes the records one by one
                    break
                await asyncio.sleep(0.2 * (attempt + 1))
            except Exception as error:  # a call's own failure: report it to its caller only
                await conn.rollback()
                for _work, future in calls:
                    if not future.done():
                        future.set_exception(error)
                calls = []
        for _work, future in calls:
            if not future.done():
                future.set_exception(RuntimeError("the database write failed; see the log"))
        self.failed_batches += 1
        log.error("dropped %d record(s) after repeated write failures", len(batch))
        return "failed"

    async def _link(self, conn: aiosqlite.Connection, items: list[Any]) -> list[tuple[Any, ...]]:
        """Chain events after the head as it is on disk now (inside the write transaction)."""
        async with conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        self.chain = Chain(row[0], row[1]) if row else Chain()
        return [self.chain.append(*item) for item in items]

    # --- readers (the admin API) ------------------------------------------------------------

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        conn = self._reader
        assert conn is not None
        async with conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def verify_ledger(
        self, expect_head: str | None = None, page: int = 2000
    ) -> dict[str, Any]:
        verifier = Verifier(expect_head=expect_head)
        last = 0
        conn = self._reader
        assert conn is not None
        while True:
            async with conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, page),
            ) as cursor:
                rows = list(await cursor.fetchall())
            if not rows:
                break
            for row in rows:
                if not verifier.feed(tuple(row)):
                    return verifier.result()
            last = rows[-1][0]
        return verifier.result()

    def queue_depth(self) -> int:
        return self.queue.qsize()
