"""Graceful shutdown: SIGTERM lets in-flight requests and streams finish (within the grace
period), then the process exits 0; the grace period bounds how long it waits."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .harness import CEILING, Behaviour, Gateway, Upstream, provider, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("slow")
    yield server
    server.close()


def pipe(up: Upstream) -> dict[str, str]:
    return {
        "main.pipe": provider("slow", up.url)
        + "route chat {\n  path /v1/chat/completions\n  chain slow\n}\n"
    }


def test_sigterm_lets_inflight_stream_and_request_finish(tmp_path: Path, up: Upstream) -> None:
    up.reset()
    up.script = [Behaviour(words=8, chunk_delay=0.2)]  # the stream: ~1.6 s
    # a grace period far longer than the wait below: exiting at all shows the gateway left as
    # soon as its work was done, not when the grace period ran out
    with running_gateway(tmp_path, pipe(up), env={"STOCKYARD_GRACE": "300"}) as gw:
        plain: dict[str, object] = {}

        def slow_plain() -> None:
            try:
                response = httpx.post(
                    f"{gw.url}/v1/chat/completions",
                    timeout=10,
                    json={"model": "m", "messages": MESSAGES},
                )
                plain["status"] = response.status_code
            except httpx.HTTPError as error:
                plain["error"] = repr(error)

        body = {"model": "m", "messages": MESSAGES, "stream": True}
        with httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10
        ) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert "chat.completion.chunk" in first
            up.default = Behaviour(delay=1.0)  # the plain request: answered after 1 s
            thread = threading.Thread(target=slow_plain)
            thread.start()
            assert up.wait_for(lambda u: u.count == 2)
            gw.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        thread.join(10)
        assert plain == {"status": 200}
        assert rest[-1] == "data: [DONE]"
        assert sum("w" in line and "content" in line for line in rest) >= 7
        assert gw.process is not None
        code = gw.process.wait(CEILING)
        assert code == 0, gw.log()[-2000:]
        # no longer listening
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/health", timeout=2)


def test_grace_period_bounds_the_wait(tmp_path: Path, up: Upstream) -> None:
    up.reset()
    # ~120 s: far longer than the 1 s grace period and than the wait for the exit below
    up.script = [Behaviour(words=1200, chunk_delay=0.1)]
    with running_gateway(tmp_path, pipe(up), env={"STOCKYARD_GRACE": "1"}) as gw:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        with httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body, timeout=15
        ) as response:
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            stopped_at = time.monotonic()
            gw.send_signal(signal.SIGTERM)
            assert gw.process is not None
            code = gw.process.wait(CEILING)
            waited = time.monotonic() - stopped_at
            with pytest.raises(httpx.HTTPError):
                for line in lines:
                    assert line != "data: [DONE]"
        assert code == 0, gw.log()[-2000:]
        assert waited > 0.8, waited  # the stream had its grace period
        # the upstream request was not left running
        assert up.wait_for(lambda u: u.cancelled == 1, timeout=CEILING)


def test_sigint_stops_too(tmp_path: Path, up: Upstream) -> None:
    up.reset()
    gw = Gateway(tmp_path)
    for name, text in pipe(up).items():
        gw.write(name, text)
    gw.start()
    try:
        assert gw.stop(signal.SIGINT) == 0
    finally:
        gw.stop()
