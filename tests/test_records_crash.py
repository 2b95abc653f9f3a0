"""Crash safety of the records: ``kill -9`` under load loses only what was still waiting in the
writer's queue (the requests of the last flush interval or so), the database opens again and
the ledger verifies; a graceful stop (SIGTERM) under load loses nothing.

Run with ``-s`` to see the measured figures.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from stockyard.store.database import Store

from .harness import REPO, Gateway
from .records_support import get

FLUSH_INTERVAL = Store("unused").flush_interval  # the default the gateway runs with
PIPE = """
provider sim {
  kind    mock
}
price "mock-mini" { input $0.20/1M  output $0.80/1M }

route chat {
  path    /v1/chat/completions
  chain   sim
  modules [trace, audit]
}
"""
BODY = {"model": "mock-mini", "messages": [{"role": "user", "content": "hello there"}]}


class Load:
    """Threads sending chat completions as fast as the gateway answers them; every 200 is
    remembered with the moment its answer was complete."""

    def __init__(self, gw: Gateway, threads: int = 6) -> None:
        self.url = f"{gw.url}/v1/chat/completions"
        self.ok: list[tuple[str, float]] = []
        self.failures = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.queue_depth = -1
        self.threads.append(
            threading.Thread(target=self._sample, args=(f"{gw.url}/metrics",), daemon=True)
        )

    def _sample(self, metrics: str) -> None:
        """Keep the writer queue's depth (records) as /metrics reports it, every 20 ms."""
        with httpx.Client(timeout=1) as http:
            while not self.stop.is_set():
                try:
                    text = http.get(metrics).text
                except httpx.HTTPError:
                    return
                for line in text.splitlines():
                    if line.startswith("stockyard_store_queue_depth "):
                        self.queue_depth = int(float(line.split()[1]))
                time.sleep(0.02)

    def _run(self) -> None:
        with httpx.Client(timeout=5, headers={"authorization": "Bearer sk-load-0000"}) as http:
            while not self.stop.is_set():
                try:
                    response = http.post(self.url, json=BODY)
                except httpx.HTTPError:
                    with self.lock:
                        self.failures += 1
                    time.sleep(0.005)
                    continue
                done = time.monotonic()
                if response.status_code == 200:
                    with self.lock:
                        self.ok.append((response.headers["x-stockyard-trace-id"], done))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ok) < count:
            assert time.monotonic() < deadline, f"only {len(self.ok)} answers in {timeout}s"
            time.sleep(0.02)


def recorded(path: Path) -> tuple[set[str], set[str], int]:
    """(trace ids, trace ids of request events in the ledger, spend requests) on disk."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        traces = {r[0] for r in conn.execute("SELECT id FROM traces")}
        events = {
            r[0]
            for r in conn.execute(
                "SELECT json_extract(detail, '$.trace_id') FROM ledger WHERE type = 'request'"
            )
        }
        spent = conn.execute("SELECT COALESCE(SUM(requests), 0) FROM spend_daily").fetchone()[0]
    finally:
        conn.close()
    return traces, events, spent


def cli_verify(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stockyard", "ledger", "verify", "--db", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_kill_9_under_load_then_graceful_stop(tmp_path: Path) -> None:
    gw = Gateway(tmp_path)
    gw.write("main.pipe", PIPE)
    db = tmp_path / "stockyard.db"
    figures: dict[str, Any] = {"flush_interval_ms": FLUSH_INTERVAL * 1000}
    try:
        gw.start("--no-watch", timeout=60)
        # --- kill -9 ---------------------------------------------------------------------
        with Load(gw) as load:
            load.wait_for(200)
            time.sleep(0.5)
            started = load.ok[0][1]
            assert gw.process is not None
            gw.process.kill()  # SIGKILL: no flush, no clean close
            killed = time.monotonic()
            gw.process.wait(10)
        answered = dict(load.ok)
        rate = len([t for t in answered.values() if t > killed - 1.0]) / min(1.0, killed - started)
        figures["rps_last_second"] = round(rate)
        traces, events, spent = recorded(db)
        lost = set(answered) - traces
        lost_events = set(answered) - events
        figures.update(
            answered_200=len(answered), lost_traces=len(lost),
            lost_events=len(lost_events), traces_on_disk=len(traces),
            recorded_but_unseen=len(traces - set(answered)),
        )  # fmt: skip
        # Only the tail can be missing: the writer commits in queue order, so every lost
        # request completed after the newest one that reached the disk (give or take the
        # client threads' own scheduling jitter), i.e. it was still queued at the kill.
        newest_kept = max(answered[t] for t in set(answered) & traces)
        oldest_lost = min((answered[t] for t in lost | lost_events), default=newest_kept)
        figures["lost_window_ms"] = round((killed - oldest_lost) * 1000, 1)
        figures["queue_at_kill"] = load.queue_depth
        assert oldest_lost >= newest_kept - 0.25, figures
        assert len(lost) < len(answered) / 2, figures
        # a trace, its spend and its ledger event are written by the same single writer: at
        # most the last batch boundary separates them
        assert len(traces ^ events) <= 2 and abs(spent - len(traces)) <= 2, figures

        # --- restart on the same database ------------------------------------------------
        gw = Gateway(tmp_path)
        gw.start("--no-watch", timeout=60)
        verdict = get(gw, "/api/trust/ledger/verify")
        assert verdict["valid"] is True, verdict
        run = cli_verify(db)
        assert run.returncode == 0 and "ledger valid" in run.stdout, run.stdout + run.stderr
        assert get(gw, "/api/lookout/traces", params={"limit": 1})["count"] == 1
        before = set(recorded(db)[0])

        # --- SIGTERM under load: nothing lost ---------------------------------------------
        with Load(gw) as load:
            load.wait_for(200)
            time.sleep(0.3)
            gw.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            code = gw.process.wait(30)  # type: ignore[union-attr]
        assert code == 0, gw.log()[-2000:]
        answered = dict(load.ok)
        traces, events, _ = recorded(db)
        figures.update(
            graceful_answered_200=len(answered), graceful_lost=len(set(answered) - traces)
        )
        assert set(answered) <= traces, figures
        assert set(answered) <= events, figures
        assert len(traces - before) >= len(answered)
        assert traces <= events | (before - events)  # every new trace has its ledger event
        run = cli_verify(db)
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        gw.stop()
        print("\ncrash test:", figures)
