"""Hot reload under traffic: an edited `.pipe` file (atomic rename) goes live by itself with no
failed request; a broken file keeps the old routes serving and its diagnostics are
shown by `GET /api/proxy/reload`; `POST /api/proxy/reload` and SIGHUP force a reload."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .harness import (
    CEILING,
    Behaviour,
    Gateway,
    Upstream,
    eventually,
    provider,
    running_gateway,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def old() -> Iterator[Upstream]:
    server = Upstream("old")
    yield server
    server.close()


@pytest.fixture(scope="module")
def new() -> Iterator[Upstream]:
    server = Upstream("new")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh(old: Upstream, new: Upstream) -> None:
    old.reset()
    new.reset()


def pipeline(old: Upstream, new: Upstream, target: str, comment: str = "") -> str:
    return (
        provider("old", old.url)
        + provider("new", new.url)
        + f"""
# {comment}
route chat {{
  path  /v1/chat/completions
  chain {target}
}}
"""
    )


BROKEN = """
route chat {
  path  /v1/chat/completions
  chain nwe
}
"""


@pytest.fixture(scope="module")
def watched(
    tmp_path_factory: pytest.TempPathFactory, old: Upstream, new: Upstream
) -> Iterator[Gateway]:
    """A watching gateway shared by the tests that do not measure anything from a cold start."""
    files = {"main.pipe": pipeline(old, new, "old")}
    with running_gateway(tmp_path_factory.mktemp("watched"), files) as gateway:
        yield gateway


def settle(gw: Gateway, text: str) -> str:
    """Make ``text`` the serving pipeline now (write, then force a reload)."""
    gw.write("main.pipe", text)
    response = gw.api("POST", "/api/proxy/reload")
    assert response.status_code == 200, response.text
    return text


@dataclass
class Result:
    sent: float
    done: float
    status: int | None
    provider: str | None
    error: str | None = None


class Traffic:
    """Requests sent back to back from ``workers`` threads until stopped."""

    def __init__(self, gw: Gateway, workers: int = 2) -> None:
        self.gw = gw
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)

    def _run(self) -> None:
        with httpx.Client(base_url=self.gw.url, timeout=10) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post(
                        "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}
                    )
                    result = Result(
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("x-stockyard-provider"),
                        None if response.status_code == 200 else response.text,
                    )
                except httpx.HTTPError as error:
                    result = Result(sent, time.monotonic(), None, None, repr(error))
                with self._lock:
                    self.results.append(result)

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def wait(self, predicate, timeout: float = CEILING) -> Result:  # type: ignore[no-untyped-def]
        """The first result (in completion order) satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for result in self.snapshot():
                if predicate(result):
                    return result
            time.sleep(0.005)
        raise AssertionError("traffic never showed the expected result")

    def at_least(self, count: int, predicate) -> list[Result]:  # type: ignore[no-untyped-def]
        """Wait for ``count`` results satisfying ``predicate``; all those seen by then."""
        return eventually(  # type: ignore[no-any-return]
            lambda: len(found := [r for r in self.snapshot() if predicate(r)]) >= count and found,
            f"{count} requests of the expected kind",
        )


def reload_status(gw: Gateway) -> dict:  # type: ignore[type-arg]
    response = gw.api("GET", "/api/proxy/reload")
    assert response.status_code == 200
    return response.json()


def wait_status(gw: Gateway, ok: bool, timeout: float = CEILING) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        status = reload_status(gw)
        if status["ok"] is ok:
            return status
        assert time.monotonic() < deadline, f"reload status stayed {status}"
        time.sleep(0.02)


def test_hot_reload_under_traffic(tmp_path: Path, old: Upstream, new: Upstream) -> None:
    with (
        running_gateway(tmp_path, {"main.pipe": pipeline(old, new, "old")}) as gw,
        Traffic(gw) as traffic,
    ):
        traffic.wait(lambda r: r.provider == "old")
        # a slow stream that starts on the old generation...
        old.default = Behaviour(words=5, chunk_delay=0.2)  # only streams notice
        slow = httpx.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            timeout=10,
            json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
        )
        slow_response = slow.__enter__()
        assert slow_response.headers["x-stockyard-provider"] == "old"

        # the route moves to another upstream: atomic rename, as editors save
        before = reload_status(gw)["reloads"]
        edited = time.monotonic()
        gw.write("main.pipe", pipeline(old, new, "new"))
        first_new = traffic.wait(lambda r: r.provider == "new")
        latency = first_new.done - edited
        print(f"\nhot reload: the new route answered {latency * 1000:.0f} ms after the rename")
        # from then on every request takes the new route
        later = traffic.at_least(10, lambda r: r.sent > first_new.done)
        assert all(r.provider == "new" for r in later)
        assert reload_status(gw)["reloads"] == before + 1

        # ...and finishes on it, as one generation serves a request from start to end
        text = slow_response.read().decode()
        slow.__exit__(None, None, None)
        assert text.rstrip().endswith("data: [DONE]") and "w4" in text

        # a broken file: rejected, the routes of the last good generation keep serving
        gw.write("main.pipe", BROKEN)
        broken_at = time.monotonic()
        status = wait_status(gw, ok=False)
        rejected_at = time.monotonic()
        traffic.at_least(10, lambda r: r.sent > rejected_at)  # sent after the rejection
        after_broken = [r for r in traffic.snapshot() if r.sent > broken_at]
        assert after_broken and all(r.provider == "new" for r in after_broken)

    results = traffic.snapshot()
    failed = [r for r in results if r.status != 200]
    assert not failed, failed[:5]
    assert len(results) > 20

    # the diagnostics: code, message, where, and the text `stockyard check` would print
    assert status["failures"] >= 1
    assert "error" in status["message"]
    codes = {d["code"] for d in status["diagnostics"]}
    assert codes, status
    diagnostic = status["diagnostics"][0]
    assert "nwe" in diagnostic["message"]
    assert "main.pipe" in status["rendered"]
    assert "nwe" in status["rendered"]
    assert diagnostic["code"] in status["rendered"]
    assert "reload rejected" in gw.log()


def test_broken_then_reverted(watched: Gateway, old: Upstream, new: Upstream) -> None:
    """Saving the serving content back after a broken save clears the failure."""
    gw = watched
    good = settle(gw, pipeline(old, new, "old", comment="reverted"))
    gw.write("main.pipe", BROKEN)
    wait_status(gw, ok=False)
    post = gw.api("POST", "/api/proxy/reload")  # forced: still broken
    assert post.status_code == 422 and post.json()["ok"] is False
    gw.write("main.pipe", good)
    status = wait_status(gw, ok=True)
    assert all(d["severity"] != "error" for d in status["diagnostics"])
    assert (
        httpx.post(
            f"{gw.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
        ).status_code
        == 200
    )


def test_forced_reloads_post_and_sighup(tmp_path: Path, old: Upstream, new: Upstream) -> None:
    """With the watcher off, only a forced reload picks up an edit."""
    files = {"main.pipe": pipeline(old, new, "old")}
    with running_gateway(tmp_path, files, env={"STOCKYARD_WATCH": "0"}) as gw:

        def served_by() -> str:
            response = httpx.post(
                f"{gw.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
            )
            assert response.status_code == 200
            return response.headers["x-stockyard-provider"]

        gw.write("main.pipe", pipeline(old, new, "new"))
        time.sleep(0.5)
        assert served_by() == "old"  # not watching

        response = gw.api("POST", "/api/proxy/reload")
        assert response.status_code == 200 and response.json()["ok"] is True
        assert served_by() == "new"  # live as soon as POST answers

        gw.write("main.pipe", pipeline(old, new, "old", comment="back"))
        reloads = reload_status(gw)["reloads"]
        gw.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while reload_status(gw)["reloads"] == reloads:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.02)
        assert served_by() == "old"
        assert gw.process is not None and gw.process.poll() is None  # SIGHUP did not stop it


def test_bursts_of_saves_collapse(watched: Gateway, old: Upstream, new: Upstream) -> None:
    gw = watched
    settle(gw, pipeline(old, new, "old", comment="burst"))
    before = reload_status(gw)["reloads"]
    for i in range(10):
        gw.write("main.pipe", pipeline(old, new, "new" if i % 2 else "old", comment=f"save {i}"))
    deadline = time.monotonic() + 10
    while reload_status(gw)["reloads"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)
    assert reload_status(gw)["reloads"] - before <= 3  # not one per save
    response = httpx.post(
        f"{gw.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.headers["x-stockyard-provider"] == "new"  # the last save won


def test_new_file_in_directory_is_picked_up(watched: Gateway, old: Upstream, new: Upstream) -> None:
    """The directory is watched, not single files: a file added next to the others counts."""
    gw = watched
    settle(gw, pipeline(old, new, "old", comment="new file"))
    extra = gw.write("extra.pipe", "route extra {\n  path /v1/embeddings\n  chain new\n}\n")
    try:
        deadline = time.monotonic() + 10
        while True:
            response = httpx.post(f"{gw.url}/v1/embeddings", json={"model": "e", "input": "x"})
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, response.text
            time.sleep(0.02)
        assert response.headers["x-stockyard-provider"] == "new"
    finally:
        extra.unlink()


def test_configmap_symlink_swap(watched: Gateway, old: Upstream, new: Upstream) -> None:
    """A Kubernetes ConfigMap volume: files are symlinks through `..data`, which is swapped
    atomically to a new hidden timestamped directory on update."""
    gw = watched
    settle(gw, pipeline(old, new, "old", comment="configmap"))
    root = gw.pipelines / "cm"

    def version(name: str, target: str) -> None:
        (root / name).mkdir(parents=True)
        (root / name / "extra.pipe").write_text(
            f"route extra {{\n  path /v1/embeddings\n  chain {target}\n}}\n"
        )

    def embeddings_provider() -> str | None:
        response = httpx.post(
            f"{gw.url}/v1/embeddings", json={"model": "e", "input": "x"}, timeout=10
        )
        return response.headers.get("x-stockyard-provider") if response.status_code == 200 else None

    def wait_provider(expected: str | None) -> None:
        deadline = time.monotonic() + 10
        while (got := embeddings_provider()) != expected:
            assert time.monotonic() < deadline, (got, reload_status(gw)["rendered"])
            time.sleep(0.02)

    try:
        version("..2026_01_01_v1", "old")
        (root / "..data").symlink_to("..2026_01_01_v1")
        (root / "extra.pipe").symlink_to("..data/extra.pipe")
        wait_provider("old")
        assert reload_status(gw)["ok"] is True
        # the update, as the kubelet does it
        version("..2026_01_02_v2", "new")
        (root / "..data_tmp").symlink_to("..2026_01_02_v2")
        os.replace(root / "..data_tmp", root / "..data")
        shutil.rmtree(root / "..2026_01_01_v1")
        wait_provider("new")
        assert reload_status(gw)["ok"] is True
    finally:
        shutil.rmtree(root, ignore_errors=True)
    wait_provider(None)
