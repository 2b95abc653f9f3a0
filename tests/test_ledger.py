"""The audit ledger's hash chain: 10,000 events verify; any edit, deletion or reordering is
named at the right sequence number by all three verifiers (the admin API of a running gateway,
``stockyard ledger verify`` and the in-process Verifier); a truncated tail is caught only
against an exported head; admin actions are recorded with their actor."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from stockyard.cli import main as cli_main
from stockyard.store.database import connect_sync
from stockyard.store.ledger import COLUMNS, GENESIS, Chain, Verifier, canonical, event_hash
from stockyard.store.verify import head as cli_head
from stockyard.store.verify import verify as file_verify

from .harness import REPO, Gateway, provider
from .records_support import get, ledger_events, wait_for

N = 10_000
RNG = random.Random(20261126)
INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM ledger"
ADMIN_KEY = "adm-ledger-Hq2Zr7Wc"


def build_ledger(path: Path, count: int = N) -> None:
    """``count`` request-like events, linked exactly as the store's writer links them."""
    chain = Chain()
    rows = [
        chain.append(
            "request",
            f"project:p{i % 7}",
            f"route:r{i % 3}",
            "POST /v1/chat/completions",
            {
                "trace_id": f"{i:024x}",
                "n": i,
                "cost": "0.00000585",
                "ok": i % 2 == 0,
                "note": "café ✓",
                "nested": {"a": [1, 2.5, None]},
            },
            ts=f"2026-11-26T12:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i:06d}Z",
        )
        for i in range(count)
    ]
    with connect_sync(path) as conn:
        conn.executemany(INSERT, rows)
    conn.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway serving a database that already holds the 10,000 events (it appends its own
    start-up event after them)."""
    directory = tmp_path_factory.mktemp("ledger")
    build_ledger(directory / "stockyard.db")
    gateway = Gateway(directory, admin_key=ADMIN_KEY)
    gateway.write(
        "main.pipe",
        provider("up", "http://127.0.0.1:9/v1")
        + "route chat {\n  path /v1/chat/completions\n  chain up\n}\n",
    )
    try:
        gateway.start("--no-watch", timeout=60)
        # its start-up event reaches the disk with the writer's next flush
        wait_for(lambda: api_verify(gateway)["events_checked"] == N + 1)
        yield gateway
    finally:
        gateway.stop()


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


def db(gw: Gateway) -> Path:
    return gw.directory / "stockyard.db"


def api_verify(gw: Gateway, **params: str) -> dict[str, Any]:
    return get(gw, "/api/trust/ledger/verify", params=params, headers=auth())


def cli_in_process(*args: str) -> tuple[int, str]:
    """`stockyard ARGS` through the CLI's own entry point, without a new interpreter."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(list(args))
    return code, out.getvalue()


def all_verdicts(gw: Gateway, expect_head: str | None = None) -> list[dict[str, Any]]:
    """The verdicts of the API, of `stockyard ledger verify` and of the Verifier (the API's
    walk runs in the gateway process meanwhile)."""
    with ThreadPoolExecutor(1) as pool:
        params = {"expect_head": expect_head} if expect_head else {}
        by_api_future = pool.submit(api_verify, gw, **params)
        extra = ["--expect-head", expect_head] if expect_head else []
        code, out = cli_in_process(
            "ledger", "verify", "--db", str(db(gw)), "--format", "json", *extra
        )
        by_cli = json.loads(out)
        assert code == (0 if by_cli["valid"] else 1), out
        verifier = Verifier(expect_head=expect_head)
        with sqlite3.connect(db(gw)) as conn:
            for row in conn.execute(SELECT + " ORDER BY seq"):
                if not verifier.feed(row):
                    break
        conn.close()
        by_verifier = verifier.result()
        by_api = by_api_future.result()
    assert by_api == by_cli == by_verifier
    return [by_api, by_cli, by_verifier]


class Tamper:
    """Edit the database behind the gateway's back, then put every row back as it was."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.saved: dict[int, tuple[Any, ...]] = {}

    def row(self, seq: int) -> tuple[Any, ...]:
        found = self.conn.execute(SELECT + " WHERE seq = ?", (seq,)).fetchone()
        assert found is not None
        self.saved.setdefault(seq, found)
        return found

    def set(self, seq: int, field: str, value: Any) -> None:
        self.row(seq)
        self.conn.execute(f"UPDATE ledger SET {field} = ? WHERE seq = ?", (value, seq))

    def delete(self, *seqs: int) -> None:
        for seq in seqs:
            self.row(seq)
        self.conn.execute(f"DELETE FROM ledger WHERE seq IN ({', '.join('?' * len(seqs))})", seqs)

    def swap(self, a: int, b: int) -> None:
        """Reorder: the events at a and b trade places (each keeps its content and hashes)."""
        row_a, row_b = self.row(a), self.row(b)
        self.conn.execute("DELETE FROM ledger WHERE seq IN (?, ?)", (a, b))
        self.conn.execute(INSERT, (a, *row_b[1:]))
        self.conn.execute(INSERT, (b, *row_a[1:]))

    def restore(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(
            f"INSERT OR REPLACE INTO ledger ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})",
            list(self.saved.values()),
        )
        self.conn.execute("COMMIT")
        self.saved.clear()


@pytest.fixture
def tamper(gw: Gateway) -> Iterator[Tamper]:
    editor = Tamper(db(gw))
    yield editor
    saved = dict(editor.saved)
    editor.restore()
    for seq, row in saved.items():  # exactly as it was: the next test starts from a valid chain
        assert editor.conn.execute(SELECT + " WHERE seq = ?", (seq,)).fetchone() == row
    count = editor.conn.execute("SELECT COUNT(*), MAX(seq) FROM ledger").fetchone()
    editor.conn.close()
    assert count == (N + 1, N + 1)


def _other(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


EDITS = {
    "ts": lambda row: row[1].replace("2026-11-26", "2026-11-25"),
    "type": lambda row: "admin",
    "actor": lambda row: "project:someone-else",
    "resource": lambda row: row[4] + "x",
    "action": lambda row: "GET /v1/models",
    "detail": lambda row: canonical({**json.loads(row[6]), "cost": "0"}).decode(),
    "prev_hash": lambda row: _other(row[7]),
    "hash": lambda row: _other(row[8]),
}
CASES = [(field, RNG.randint(2, N - 1)) for field in EDITS] + [("hash", 1), ("detail", N)]


def test_ten_thousand_events_verify(gw: Gateway) -> None:
    # how fast is for bench/, not for a test on a shared host: this checks only what is found
    verdicts = all_verdicts(gw)
    verdict = verdicts[0]
    assert verdict["valid"] is True and verdict["broken_at"] is None
    assert verdict["events_checked"] == N + 1  # and the gateway's own start-up event
    events = ledger_events(gw, headers=auth())
    assert len(events) == N + 1 and [e["seq"] for e in events] == list(range(1, N + 2))
    assert verdict["head_hash"] == events[-1]["hash"] and verdict["head_seq"] == N + 1
    assert events[-1]["type"] == "config" and events[-1]["action"] == "reload.applied"
    assert events[0]["prev_hash"] == GENESIS
    head = cli("ledger", "head", "--db", str(db(gw)))
    assert head.returncode == 0 and head.stdout.split() == [str(N + 1), verdict["head_hash"]]


def test_hash_is_sha256_of_prev_and_canonical_event(gw: Gateway) -> None:
    (event,) = get(gw, "/api/brand/ledger", params={"limit": 1, "before": 2}, headers=auth())[
        "events"
    ]
    body = {k: event[k] for k in ("seq", "ts", "type", "actor", "resource", "action", "detail")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert event["hash"] == hashlib.sha256((GENESIS + text).encode()).hexdigest()
    assert event["hash"] == event_hash(GENESIS, body)


@pytest.mark.parametrize(("field", "seq"), CASES, ids=[f"{f}@{s}" for f, s in CASES])
def test_edited_field_detected_at_its_event(
    gw: Gateway, tamper: Tamper, field: str, seq: int
) -> None:
    row = tamper.row(seq)
    value = EDITS[field](row)
    assert value != row[COLUMNS.index(field)]
    tamper.set(seq, field, value)
    for verdict in all_verdicts(gw):
        assert verdict["valid"] is False and verdict["broken_at"] == seq, (field, verdict)
        assert verdict["head_hash"] is None and verdict["reason"]


def test_detail_respelled_is_detected(gw: Gateway, tamper: Tamper) -> None:
    """Same JSON meaning, different bytes: still an edit of the stored event."""
    seq = RNG.randint(2, N - 1)
    row = tamper.row(seq)
    tamper.set(seq, "detail", json.dumps(json.loads(row[6]), indent=1))
    assert {v["broken_at"] for v in all_verdicts(gw)} == {seq}


def test_deleted_event_detected(gw: Gateway, tamper: Tamper) -> None:
    seq = RNG.randint(2, N - 1)
    tamper.delete(seq)
    for verdict in all_verdicts(gw):
        assert verdict["valid"] is False and verdict["broken_at"] == seq
        assert "missing" in verdict["reason"]
    run = cli("ledger", "verify", "--db", str(db(gw)))  # the text report names the event
    assert (
        run.returncode == 1
        and f"ledger BROKEN at event {seq}: event {seq} is missing" in run.stdout
    )


def test_deleted_first_event_detected(gw: Gateway, tamper: Tamper) -> None:
    tamper.delete(1)
    assert {v["broken_at"] for v in all_verdicts(gw)} == {1}


@pytest.mark.parametrize("gap", [1, 777])
def test_swapped_events_detected_at_the_first(gw: Gateway, tamper: Tamper, gap: int) -> None:
    first = RNG.randint(2, N - gap)
    tamper.swap(first, first + gap)
    for verdict in all_verdicts(gw):
        assert verdict["valid"] is False and verdict["broken_at"] == first, verdict


def test_rewritten_tail_caught_only_by_the_exported_head(gw: Gateway, tamper: Tamper) -> None:
    """Someone edits event k and recomputes every hash after it: the chain is consistent
    again, but the head exported earlier is no longer in it."""
    exported = api_verify(gw)["head_hash"]
    seq = RNG.randint(N - 999, N - 1)
    rows = [tamper.row(s) for s in range(seq - 1, N + 2)]
    chain = Chain(rows[0][0], rows[0][8])
    tamper.conn.execute("BEGIN")
    for old in rows[1:]:
        detail = json.loads(old[6])
        if old[0] == seq:
            detail["cost"] = "0"
        new = chain.append(old[2], old[3], old[4], old[5], detail, ts=old[1])
        tamper.conn.execute(
            "UPDATE ledger SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (new[6], new[7], new[8], old[0]),
        )
    tamper.conn.execute("COMMIT")
    assert all(v["valid"] for v in all_verdicts(gw))
    for verdict in all_verdicts(gw, expect_head=exported):
        assert verdict["valid"] is False and verdict["broken_at"] is None
        assert "expected head" in verdict["reason"]


def test_truncated_tail_detected_only_with_expect_head(gw: Gateway, tamper: Tamper) -> None:
    head = cli("ledger", "head", "--db", str(db(gw))).stdout.split()
    head_seq, head_hash = int(head[0]), head[1]
    assert head_seq == N + 1
    # an older head also anchors: the chain still contains it
    assert api_verify(gw, expect_head=tamper.row(N // 2)[8])["valid"] is True
    tamper.delete(*range(N - 4, head_seq + 1))  # the last 6 events
    for verdict in all_verdicts(gw):  # without an anchor, a shorter chain is a valid chain
        assert verdict["valid"] is True and verdict["events_checked"] == N - 5
    for verdict in all_verdicts(gw, expect_head=head_hash):
        assert verdict["valid"] is False and "truncated" in verdict["reason"]
    run = cli("ledger", "verify", "--db", str(db(gw)), "--expect-head", head_hash)
    assert run.returncode == 1 and "BROKEN" in run.stdout and "truncated" in run.stdout
    alias = get(gw, "/api/brand/ledger/verify", params={"expect_head": head_hash}, headers=auth())
    assert alias["valid"] is False and alias["events_checked"] == N - 5


def test_ledger_pagination(gw: Gateway) -> None:
    page = get(gw, "/api/brand/ledger", params={"limit": 3, "before": 11}, headers=auth())
    assert [e["seq"] for e in page["events"]] == [10, 9, 8] and page["next"] == 8
    page = get(gw, "/api/brand/ledger", params={"limit": 500, "before": 3}, headers=auth())
    assert [e["seq"] for e in page["events"]] == [2, 1] and page["next"] is None
    for bad in ({"before": "x"}, {"limit": "0"}):
        assert gw.api("GET", "/api/brand/ledger", params=bad, headers=auth()).status_code == 400


def test_cli_on_a_missing_database(tmp_path: Path) -> None:
    run = cli("ledger", "verify", "--db", str(tmp_path / "nope.db"))
    assert run.returncode == 2 and "no such database" in run.stderr


def test_verifier_pages_give_the_same_verdict(tmp_path: Path) -> None:
    path = tmp_path / "small.db"
    build_ledger(path, 1000)
    whole = file_verify(path)
    assert whole["valid"] and whole["events_checked"] == 1000
    assert file_verify(path, page=7) == whole
    assert cli_head(path) == (1000, whole["head_hash"])


# --- admin actions --------------------------------------------------------------------------


def pipe(n: int) -> str:
    return (
        provider("up", "http://127.0.0.1:9/v1")
        + f"route chat {{\n  path /v1/chat/completions\n  chain up\n}}\n# version {n}\n"
    )


def config_events(gw: Gateway, after: int) -> list[dict[str, Any]]:
    return [
        e for e in ledger_events(gw, headers=auth()) if e["seq"] > after and e["type"] == "config"
    ]


def test_admin_actions_are_in_the_ledger_with_their_actor(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, admin_key=ADMIN_KEY)
    gateway.write("main.pipe", pipe(0))
    try:
        gateway.start(timeout=60)
        (startup,) = wait_for(lambda: config_events(gateway, 0))
        assert (startup["actor"], startup["action"]) == ("system", "reload.applied")
        assert startup["detail"]["reason"] == "startup"
        mark = startup["seq"]

        response = gateway.api("POST", "/api/proxy/reload", headers=auth())
        assert response.status_code == 200
        (event,) = wait_for(lambda: config_events(gateway, mark))
        assert (event["actor"], event["action"]) == ("admin", "reload.applied")
        assert event["detail"]["reason"] == "api" and event["resource"].startswith("pipelines:")
        mark = event["seq"]

        gateway.write("main.pipe", "route broken {\n  chain nowhere\n}\n")  # hot reload: rejected
        (event,) = wait_for(lambda: config_events(gateway, mark))
        assert (event["actor"], event["action"]) == ("system", "reload.rejected")
        assert event["detail"]["message"] and event["detail"]["codes"]
        mark = event["seq"]

        response = gateway.api("POST", "/api/proxy/reload", headers={"x-admin-key": ADMIN_KEY})
        assert response.status_code == 422
        (event,) = wait_for(lambda: config_events(gateway, mark))
        assert (event["actor"], event["action"]) == ("admin", "reload.rejected")
        mark = event["seq"]

        gateway.write("main.pipe", pipe(1))  # hot reload: applied
        (event,) = wait_for(lambda: config_events(gateway, mark))
        assert (event["actor"], event["action"]) == ("system", "reload.applied")
        assert event["detail"]["reason"] == "change"
        assert get(gateway, "/api/trust/ledger/verify", headers=auth())["valid"] is True
    finally:
        gateway.stop()


def test_hashes_match_the_documented_formula_for_any_content() -> None:
    """SHA-256(prev_hash ‖ json.dumps(event, sort_keys, no whitespace, UTF-8)) for events full
    of quotes, backslashes, control characters, non-ASCII text, odd numbers and nesting."""
    rng = random.Random(7)
    alphabet = ['a', 'Z', '0', ' ', '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "é", "✓", "😀",
                "\u2028", "\x7f", "<", "&"]  # fmt: skip

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))

    def value(depth: int = 0) -> Any:
        pick = rng.random()
        if depth > 2 or pick < 0.3:
            return text()
        if pick < 0.4:
            return rng.randint(-(10**20), 10**20)
        if pick < 0.5:
            return rng.choice([1.5, -0.0, 1e16, 1e-7, 0.1, float("inf")])
        if pick < 0.6:
            return rng.choice([True, False, None])
        if pick < 0.8:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 3))}

    chain, prev, verifier = Chain(), GENESIS, Verifier()
    for seq in range(1, 1001):
        fields = {"type": text(), "actor": text(), "resource": text(), "action": text(),
                  "ts": text() or "t", "detail": {text(): value() for _ in range(3)}}  # fmt: skip
        row = chain.append(fields["type"], fields["actor"], fields["resource"], fields["action"],
                           fields["detail"], ts=fields["ts"])  # fmt: skip
        body = json.dumps({"seq": seq, **fields}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)  # fmt: skip
        assert row[8] == hashlib.sha256((prev + body).encode()).hexdigest(), fields
        assert json.loads(row[6]) == json.loads(json.dumps(fields["detail"]))
        assert verifier.feed(row), verifier.result()
        prev = row[8]
