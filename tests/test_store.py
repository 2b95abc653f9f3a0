"""The SQLite store on its own: migrations, the batching writer (interval or batch size, whichever
comes first), back-pressure, flush on close, resilience to a bad record, readers beside the
writer, and the spend counters rebuilt at start-up."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stockyard.store.database import TRACE_COLUMNS, Store, connect_sync, migrate
from stockyard.store.ledger import COLUMNS, Chain, append_sync
from stockyard.store.schema import LATEST, MIGRATIONS
from stockyard.store.spend import utc_day
from stockyard.store.verify import verify

from .harness import CEILING

T = TypeVar("T")
HOUR = 3600.0  # a flush interval no test waits for


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def trace_row(i: int, **changes: Any) -> tuple[Any, ...]:
    row = dict.fromkeys(TRACE_COLUMNS)
    row.update(
        id=f"{i:024x}", ts=time.time(), route="chat", project="p", path="/v1/chat/completions",
        model="m", status=200, stream=0, prompt_tokens=1, completion_tokens=2, cached_tokens=0,
        reasoning_tokens=0, cost_pico=5, priced=1, latency_ms=1.0, attempts="[]", notes="{}",
    )  # fmt: skip
    row.update(changes)
    return tuple(row[c] for c in TRACE_COLUMNS)


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        value = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    conn.close()
    return int(value)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    return names


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        value = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return int(value)


# --- migrations -----------------------------------------------------------------------------


def test_fresh_database_opens_at_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "fresh.db"

    async def scenario() -> None:
        store = Store(path)
        await store.open()
        await store.add_trace(trace_row(1))
        await store.close()

    run(scenario())
    assert user_version(path) == LATEST
    assert {"traces", "spend_daily", "ledger"} <= tables(path)
    assert count(path, "traces") == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_database_at_schema_1_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    latest = tmp_path / "latest.db"
    connect_sync(latest).close()
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(f"BEGIN;\n{MIGRATIONS[0][1]}\nPRAGMA user_version = 1;\nCOMMIT;")
    chain = Chain()
    event = chain.append("request", "project:p", "route:chat", "POST /v1/chat/completions", {})
    conn.execute(f"INSERT INTO ledger VALUES ({', '.join('?' * len(COLUMNS))})", event)
    conn.execute(f"INSERT INTO traces VALUES ({', '.join('?' * len(TRACE_COLUMNS))})", trace_row(1))
    conn.commit()
    conn.close()
    assert user_version(old) == 1

    async def scenario() -> dict[str, Any]:
        store = Store(old)
        await store.open()
        await store.add_event("config", "admin", "pipelines", "reload.applied", {"n": 2})
        await store.add_trace(trace_row(2))
        await store.close()
        return verify(old)

    verdict = run(scenario())
    assert user_version(old) == LATEST
    assert tables(old) == tables(latest)
    assert count(old, "traces") == 2
    assert verdict["valid"] and verdict["events_checked"] == 2  # the chain continued


def schema_3_database(path: Path) -> None:
    """A database as the schema of migration 3 left it, with one runtime toggle stored (then
    called a module override) and its change counter moved on."""
    conn = sqlite3.connect(path)
    script = "\n".join(sql for number, sql in MIGRATIONS if number <= 3)
    conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = 3;\nCOMMIT;")
    conn.execute(
        "INSERT INTO module_overrides VALUES ('prompt_guard', '', 0, NULL, 1700000000.0, 'admin')"
    )
    conn.execute("UPDATE versions SET version = 7 WHERE name = 'module_overrides'")
    conn.commit()
    conn.close()


def test_toggles_stored_by_schema_3_move_to_the_toggles_table(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    schema_3_database(old)
    connect_sync(old).close()
    assert user_version(old) == LATEST
    assert "module_overrides" not in tables(old) and "toggles" in tables(old)
    latest = tmp_path / "latest.db"
    connect_sync(latest).close()
    assert tables(old) == tables(latest)
    with sqlite3.connect(old) as conn:
        rows = conn.execute("SELECT module, route, enabled, params, actor FROM toggles").fetchall()
        versions = dict(conn.execute("SELECT name, version FROM versions").fetchall())
    conn.close()
    assert rows == [("prompt_guard", "", 0, None, "admin")]
    assert versions == {"api_keys": 0, "toggles": 7}  # the counter kept its value


def test_database_at_version_0_without_tables_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    assert user_version(path) == 0
    with connect_sync(path) as conn:
        assert migrate(conn) == LATEST  # already done by connect_sync: reports where it is
    conn.close()
    assert user_version(path) == LATEST and "ledger" in tables(path)


def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(RuntimeError) as caught:
        run(Store(path).open())
    message = str(caught.value)
    assert f"version {LATEST + 5}" in message and "newer" in message and str(path) in message
    assert user_version(path) == LATEST + 5  # untouched


def test_two_processes_migrating_one_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def opener() -> None:
        try:
            barrier.wait()
            connect_sync(path).close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and user_version(path) == LATEST


# --- the writer -----------------------------------------------------------------------------


def test_back_pressure_waits_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bp.db"
    producers, each = 20, 60

    async def scenario() -> Store:
        store = Store(path, flush_interval=0.002, batch_size=16, max_queue=8)
        await store.open()

        async def produce(p: int) -> None:
            for i in range(each):
                n = p * each + i
                await store.add_trace(trace_row(n))
                await store.add_event("request", f"project:p{p}", "route:chat", "POST", {"n": n})
                await store.add_spend((utc_day(), "p", "", "chat", "m", "x"), (1, 1, 2, 0, 5, 0))

        await asyncio.gather(*(produce(p) for p in range(producers)))
        assert store.queue.qsize() <= 8  # bounded: memory does not grow with the load
        await store.close()
        return store

    store = run(scenario())
    total = producers * each
    assert store.waits > 0, "the producers never had to wait: the test did not apply pressure"
    assert store.dropped == 0 and store.failed_batches == 0
    assert count(path, "traces") == total and count(path, "ledger") == total
    with sqlite3.connect(path) as conn:
        spent = conn.execute("SELECT requests, cost_pico FROM spend_daily").fetchone()
    conn.close()
    assert spent == (total, 5 * total)
    verdict = verify(path)
    assert verdict["valid"] and verdict["events_checked"] == total


def test_close_flushes_everything_without_waiting_for_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "close.db"
    n = 5000

    async def scenario() -> None:
        store = Store(path, flush_interval=HOUR)  # would hold rows for an hour
        await store.open()
        for i in range(n):
            await store.add_trace(trace_row(i))
            await store.add_event("request", "a", "r", "x", {"i": i})
        try:
            await asyncio.wait_for(store.close(), CEILING)
        except TimeoutError:
            pytest.fail(f"close() had not flushed after {CEILING:g} s: it waited for the interval")

    run(scenario())
    assert count(path, "traces") == n and count(path, "ledger") == n
    assert verify(path)["valid"]


def test_a_full_batch_is_written_before_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"

    async def scenario() -> int:
        store = Store(path, flush_interval=HOUR, batch_size=50)
        await store.open()
        first = trace_row(0)
        await store.add_trace(first)  # the writer starts gathering a batch
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        for i in range(1, 50):
            await store.add_trace(trace_row(i))
        # the interval is an hour away: the rows land only because the batch is full
        while not await store.query("SELECT 1 FROM traces WHERE id = ?", [trace_row(49)[0]]):
            assert time.perf_counter() - started < CEILING, "a full batch waited for the interval"
            await asyncio.sleep(0.005)
        rows = len(await store.query("SELECT id FROM traces"))
        await store.close()
        return rows

    assert run(scenario()) == 50


def test_writes_land_within_the_flush_interval(tmp_path: Path) -> None:
    async def scenario() -> float:
        store = Store(tmp_path / "interval.db", flush_interval=0.05)
        await store.open()
        started = time.perf_counter()
        await store.add_trace(trace_row(1))
        # lands by itself (no close, no full batch): the interval's flush wrote it
        while not await store.query("SELECT 1 FROM traces"):
            assert time.perf_counter() - started < CEILING, "the interval never flushed"
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        await store.close()
        return elapsed

    assert run(scenario()) >= 0.04  # held for the interval, not written row by row


def test_a_bad_record_does_not_take_its_batch_down(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"

    async def scenario() -> Store:
        store = Store(path, flush_interval=0.02)
        await store.open()
        for i in range(10):
            await store.add_trace(trace_row(i))
            await store.add_event("request", "a", "r", "x", {"i": i})
        await store.add_trace(trace_row(99, route=None))  # NOT NULL: refused by SQLite
        await store.add_trace(trace_row(98, notes={"not": "bindable"}))  # not a SQL value
        for i in range(10, 20):
            await store.add_trace(trace_row(i))
        await asyncio.sleep(0.3)
        # the writer is still alive and keeps writing
        await store.add_event("request", "a", "r", "x", {"after": True})
        await store.add_trace(trace_row(20))
        await store.close()
        return store

    store = run(scenario())
    assert store.dropped == 2
    assert count(path, "traces") == 21 and count(path, "ledger") == 11
    assert verify(path)["valid"]


def test_readers_beside_the_writer(tmp_path: Path) -> None:
    """Many concurrent API reads (rows as mappings) and verifications while rows pour in."""
    path = tmp_path / "readers.db"

    async def scenario() -> None:
        store = Store(path, flush_interval=0.001)
        await store.open()
        for i in range(300):
            await store.add_event("request", "a", "r", "x", {"i": i})
            await store.add_trace(trace_row(i))

        async def reader(k: int) -> None:
            for _ in range(20):
                if k % 2:
                    rows = await store.query("SELECT * FROM traces ORDER BY id DESC LIMIT 5")
                    assert all(dict(r)["route"] == "chat" for r in rows)
                else:
                    assert (await store.verify_ledger(page=37))["valid"]

        async def writer() -> None:
            for i in range(300, 600):
                await store.add_event("request", "a", "r", "x", {"i": i})
                await store.add_trace(trace_row(i))
                await asyncio.sleep(0)

        await asyncio.gather(writer(), *(reader(k) for k in range(8)))
        await store.close()

    run(scenario())
    assert count(path, "traces") == 600 and verify(path)["events_checked"] == 600


def test_another_process_appending_to_the_ledger(tmp_path: Path) -> None:
    """The CLI appends admin events straight to the file while the gateway runs."""
    path = tmp_path / "shared.db"

    async def scenario() -> None:
        store = Store(path, flush_interval=0.005)
        await store.open()
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("PRAGMA busy_timeout=5000")

        def cli_append(i: int) -> None:
            other.execute("BEGIN IMMEDIATE")
            append_sync(other, "admin", "cli", "key:k", "key.create", {"i": i})
            other.execute("COMMIT")

        for i in range(20):
            await store.add_event("request", "a", "r", "x", {"i": i})
            await asyncio.sleep(0.01)
            if i % 5 == 0:
                # another process: its wait for the write lock must not block the gateway's
                # loop, or the store could never finish the transaction it is waiting for
                await asyncio.to_thread(cli_append, i)
        other.close()
        await store.close()

    run(scenario())
    verdict = verify(path)
    assert verdict["valid"] and verdict["events_checked"] == 24


def test_spend_counters_are_rebuilt_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"
    day = utc_day()

    async def scenario() -> tuple[tuple[int, int], tuple[int, int]]:
        store = Store(path)
        await store.open()
        for pico in (1_000_000, 2_500_000, 7):
            store.spend.add(day, "proj", "key1", "chat", pico)
            await store.add_spend((day, "proj", "key1", "chat", "m", "x"), (1, 1, 1, 0, pico, 0))
        await store.close()
        again = Store(path)
        await again.open()
        result = again.spend.spent("project", "proj", day), again.spend.spent("key", "key1", day)
        await again.close()
        return result

    by_project, by_key = run(scenario())
    assert by_project == by_key == (3_500_007, 3_500_007)


def test_serve_on_a_newer_database_says_so_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from .harness import REPO, free_port

    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    pipes = tmp_path / "p"
    pipes.mkdir()
    (pipes / "main.pipe").write_text(
        'provider x {\n  kind openai\n  base_url "http://127.0.0.1:9/v1"\n  api_key passthrough\n}\n'
        "route r {\n  path /v1/chat/completions\n  chain x\n}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "stockyard", "serve", "--port", str(free_port()),
         "--pipelines", str(pipes), "--db", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert "newer than this Stockyard" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


def test_rows_read_back_exactly_as_written(tmp_path: Path) -> None:
    """Every kind of value comes back from SQLite with the type and value it had, and a value
    SQLite cannot hold (beyond 64 bits) costs only its own record, not its batch."""
    path = tmp_path / "exact.db"
    odd = {
        "route": 'ünïcödé ✓ 😀 \u2028 "quoted" \\ back\\slash',
        "error": "nul\x00inside and \x1f control",
        "cost_pico": 2**63 - 1,
        "prompt_tokens": 0,
        "latency_ms": 0.1 + 0.2,
        "ttft_ms": 1e-7,
        "overhead_ms": 12345.678,
        "ts": 1795722176.6179495,
        "key_id": None,
        "notes": '{"a":[1,2.5,null]}',
    }
    rows = [trace_row(i, **(odd if i % 2 else {})) for i in range(50)]
    rows.append(trace_row(99, cost_pico=2**70))  # beyond 64 bits

    async def scenario() -> None:
        store = Store(path, flush_interval=0.01)
        await store.open()
        for row in rows:
            await store.add_trace(row)
        await store.close()

    run(scenario())
    with sqlite3.connect(path) as conn:
        got = {r[0]: r for r in conn.execute(f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces")}
        types = conn.execute(
            "SELECT typeof(cost_pico), typeof(ts), typeof(key_id) FROM traces WHERE id = ?",
            (rows[1][0],),
        ).fetchone()
    conn.close()
    assert types == ("integer", "real", "null")
    for row in rows:
        back = got.get(row[0])
        if row[0] == trace_row(99)[0]:
            assert back is None  # too big for SQLite: dropped, alone
            continue
        assert back == row, [(c, a, b) for c, a, b in zip(TRACE_COLUMNS, row, back or ()) if a != b]
