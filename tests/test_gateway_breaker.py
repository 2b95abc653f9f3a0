"""Circuit breakers end to end (threshold and cool-down from STOCKYARD_BREAKER_*): a provider
that keeps failing is skipped, the skip is recorded on the trace, one probe goes through after
the cool-down, and a healthy probe closes the breaker again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from stockyard.runtime import breaker as breaker_module
from stockyard.runtime.breaker import Breakers
from stockyard.runtime.services import breakers_from_env

from .harness import Behaviour, Gateway, Upstream, closed_url, provider, running_gateway

THRESHOLD = 3
COOLDOWN = 2.0
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def sick() -> Iterator[Upstream]:
    server = Upstream("sick")
    yield server
    server.close()


@pytest.fixture(scope="module")
def healthy() -> Iterator[Upstream]:
    server = Upstream("healthy")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, sick: Upstream, healthy: Upstream
) -> Iterator[Gateway]:
    # one provider name per test, all on the same upstream: breakers are per provider name
    names = ["opens", "reopens", "solo", "neutral", "dead"]
    pipe = "".join(provider(n, sick.url) for n in names[:-1])
    pipe += provider("dead", closed_url()) + provider("healthy", healthy.url)
    for name in names:
        chain = name if name == "solo" else f"{name} -> healthy"
        pipe += f"""
route {name} {{
  path    /v1/chat/completions
  models  "{name}-*"
  chain   {chain}
  modules [trace]
}}
"""
    env = {
        "STOCKYARD_BREAKER_THRESHOLD": str(THRESHOLD),
        "STOCKYARD_BREAKER_COOLDOWN": f"{COOLDOWN:g}s",
    }
    with running_gateway(
        tmp_path_factory.mktemp("breaker"), {"main.pipe": pipe}, env=env
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(sick: Upstream, healthy: Upstream) -> None:
    sick.reset()
    healthy.reset()


def send(gw: Gateway, model: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions", json={"model": model, "messages": MESSAGES}, timeout=10
    )


def circuit(gw: Gateway, name: str) -> str:
    providers = gw.api("GET", "/api/proxy/providers").json()["providers"]
    return next(p["circuit"] for p in providers if p["name"] == name)


def open_breaker(gw: Gateway, sick: Upstream, name: str) -> float:
    """Fail THRESHOLD requests; returns a time no later than the moment the breaker opened."""
    sick.default = Behaviour(status=500)
    for _ in range(THRESHOLD):
        before_last = time.monotonic()
        response = send(gw, f"{name}-x")
        assert response.headers.get("x-stockyard-provider") == "healthy"
    assert sick.count == THRESHOLD
    assert circuit(gw, name) == "open"
    return before_last


def wait_half_open(gw: Gateway, name: str) -> None:
    deadline = time.monotonic() + COOLDOWN + 10
    while circuit(gw, name) != "half-open":
        assert time.monotonic() < deadline, f"breaker of {name} never became half-open"
        time.sleep(0.05)


def within_cooldown(opened: float) -> bool:
    """Whether everything since ``opened`` happened inside the cool-down (so on a very slow
    machine a test does not assert a skip the breaker was right not to make)."""
    return time.monotonic() - opened < COOLDOWN * 0.95


def test_breaker_opens_skips_and_recovers(gw: Gateway, sick: Upstream, healthy: Upstream) -> None:
    assert circuit(gw, "opens") == "closed"
    opened = open_breaker(gw, sick, "opens")
    # open: requests no longer reach the failing upstream, and the skip is on the trace
    skipped = []
    for _ in range(5):
        before = sick.count
        response = send(gw, "opens-y")
        assert response.status_code == 200
        assert response.headers["x-stockyard-provider"] == "healthy"
        if within_cooldown(opened):  # (after the cool-down one probe may reach it)
            assert sick.count == before
            skipped.append(response.headers["x-stockyard-trace-id"])
    assert skipped, "this machine is too slow for the cool-down"
    for trace_id in skipped:
        attempts = gw.trace(trace_id)["attempts"]
        assert [(a["provider"], a["outcome"]) for a in attempts] == [
            ("opens", "skipped"),
            ("healthy", "ok"),
        ]
        assert attempts[0]["error"] == "circuit open"
    # after the cool-down one probe goes through; the upstream has recovered: closed again
    sick.default = Behaviour()
    wait_half_open(gw, "opens")
    response = send(gw, "opens-z")
    assert response.headers["x-stockyard-provider"] == "opens"
    assert sick.count == THRESHOLD + 1
    assert circuit(gw, "opens") == "closed"
    for _ in range(3):
        assert send(gw, "opens-w").headers["x-stockyard-provider"] == "opens"


def test_failed_probe_reopens(gw: Gateway, sick: Upstream) -> None:
    open_breaker(gw, sick, "reopens")
    wait_half_open(gw, "reopens")
    probe = time.monotonic()
    assert send(gw, "reopens-a").headers["x-stockyard-provider"] == "healthy"  # probe failed
    assert sick.count == THRESHOLD + 1
    send(gw, "reopens-b")
    if within_cooldown(probe):
        assert circuit(gw, "reopens") == "open"
        assert sick.count == THRESHOLD + 1  # skipped again at once, for another cool-down


def test_open_breaker_on_only_provider_is_503(gw: Gateway, sick: Upstream) -> None:
    sick.default = Behaviour(status=500)
    for _ in range(THRESHOLD):
        opened = time.monotonic()
        assert send(gw, "solo-x").status_code == 502
    response = send(gw, "solo-x")
    assert within_cooldown(opened), "this machine is too slow for the cool-down"
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_provider_available"
    assert "circuit open" in error["message"]
    assert sick.count == THRESHOLD


def test_probe_answered_4xx_does_not_block_the_provider(gw: Gateway, sick: Upstream) -> None:
    """A half-open probe that gets a 400 says nothing about health: the next request probes."""
    open_breaker(gw, sick, "neutral")
    wait_half_open(gw, "neutral")
    sick.script = [Behaviour(status=400)]
    sick.default = Behaviour()
    assert send(gw, "neutral-a").status_code == 400  # the probe: no failover on 400
    response = send(gw, "neutral-b")
    assert response.headers["x-stockyard-provider"] == "neutral"
    assert circuit(gw, "neutral") == "closed"


def test_connection_refused_opens_the_breaker(gw: Gateway, healthy: Upstream) -> None:
    for _ in range(THRESHOLD):
        opened = time.monotonic()
        send(gw, "dead-x")
    response = send(gw, "dead-y")
    assert within_cooldown(opened), "this machine is too slow for the cool-down"
    assert response.headers["x-stockyard-provider"] == "healthy"
    attempts = gw.trace(response.headers["x-stockyard-trace-id"])["attempts"]
    assert attempts[0]["provider"] == "dead" and attempts[0]["outcome"] == "skipped"


def test_fixing_a_provider_by_reload_resets_its_breaker(
    gw: Gateway, sick: Upstream, healthy: Upstream
) -> None:
    """An operator points a failing provider elsewhere: the new definition is tried at once,
    not after the old definition's cool-down."""

    def moving(url: str) -> str:
        return provider("moving", url) + (
            'route moving {\n  path /v1/chat/completions\n  models "moving-*"\n'
            "  chain moving -> healthy\n  modules [trace]\n}\n"
        )

    def reloads() -> int:
        return gw.api("GET", "/api/proxy/reload").json()["reloads"]

    count = reloads()
    gw.write("moving.pipe", moving(closed_url()))
    try:
        deadline = time.monotonic() + 10
        while reloads() == count:
            assert time.monotonic() < deadline, "moving.pipe was not loaded"
            time.sleep(0.02)
        for _ in range(THRESHOLD):
            opened = time.monotonic()
            assert send(gw, "moving-x").headers["x-stockyard-provider"] == "healthy"
        assert circuit(gw, "moving") == "open"
        count = reloads()
        gw.write("moving.pipe", moving(sick.url))  # fixed: now it points at a live upstream
        while reloads() == count:
            assert time.monotonic() < deadline, "the fix was not loaded"
            time.sleep(0.02)
        response = send(gw, "moving-y")
        assert within_cooldown(opened), "this machine is too slow for the cool-down"
        assert response.headers["x-stockyard-provider"] == "moving"
        assert circuit(gw, "moving") == "closed"
    finally:
        (gw.pipelines / "moving.pipe").unlink()


# --- the state machine itself, on a fake clock ---------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(breaker_module.time, "monotonic", lambda: now[0])
    return now


def test_breaker_state_machine(clock: list[float]) -> None:
    b = Breakers(threshold=2, cooldown=10)
    b.failure("p")
    assert b.allow("p") and b.state("p") == "closed"
    b.success("p")
    b.failure("p")
    assert b.allow("p")  # success reset the count: one failure is not two in a row
    b.failure("p")
    assert not b.allow("p") and b.state("p") == "open"
    clock[0] += 10
    assert b.state("p") == "half-open"
    assert b.allow("p")  # the probe
    assert not b.allow("p")  # only one at a time
    b.failure("p")
    assert b.state("p") == "open" and not b.allow("p")
    clock[0] += 10
    assert b.allow("p")
    b.success("p")
    assert b.state("p") == "closed" and b.allow("p")


def test_probe_that_never_reports_back_stops_blocking(clock: list[float]) -> None:
    b = Breakers(threshold=1, cooldown=5)
    b.failure("p")
    clock[0] += 5
    assert b.allow("p")  # a probe that then vanishes without success/failure/release
    assert not b.allow("p")
    clock[0] += 5
    assert b.allow("p")


def test_released_probe_hands_over(clock: list[float]) -> None:
    b = Breakers(threshold=1, cooldown=5)
    b.failure("p")
    clock[0] += 5
    assert b.allow("p")
    b.release("p")
    assert b.allow("p")


def test_breaker_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKYARD_BREAKER_THRESHOLD", "7")
    monkeypatch.setenv("STOCKYARD_BREAKER_COOLDOWN", "250ms")
    b = breakers_from_env()
    assert (b.threshold, b.cooldown) == (7, 0.25)
    monkeypatch.setenv("STOCKYARD_BREAKER_COOLDOWN", "12")
    assert breakers_from_env().cooldown == 12
    monkeypatch.delenv("STOCKYARD_BREAKER_THRESHOLD")
    monkeypatch.delenv("STOCKYARD_BREAKER_COOLDOWN")
    assert (breakers_from_env().threshold, breakers_from_env().cooldown) == (5, 30)
    monkeypatch.setenv("STOCKYARD_BREAKER_THRESHOLD", "0")
    with pytest.raises(ValueError, match="STOCKYARD_BREAKER_THRESHOLD"):
        breakers_from_env()
    monkeypatch.setenv("STOCKYARD_BREAKER_THRESHOLD", "many")
    with pytest.raises(ValueError, match="STOCKYARD_BREAKER_THRESHOLD"):
        breakers_from_env()
