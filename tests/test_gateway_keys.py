"""Credentials: `api_key passthrough` forwards the caller's bearer token, `api_key env(...)`
sends the gateway's own key instead; neither key ever shows in a response, a header, the
traces or the gateway log, even when an upstream echoes the key back in its error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .harness import Behaviour, Gateway, Upstream, provider, running_gateway

CALLER_KEY = "sk-caller-SECRET-7c1e9d0a55b2"
ENV_KEY = "sk-gateway-ENVKEY-44f0aa19c3d8"


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("keyed")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    pipe = (
        provider("pass", up.url)
        + provider("own", up.url, api_key='env("UPSTREAM_KEY")')
        + """
route passthrough {
  path    /v1/chat/completions, /v1/embeddings
  models  "pass-*"
  chain   pass
  timeout 500ms
  modules [trace(bodies: true)]
}

route envkey {
  path    /v1/chat/completions, /v1/embeddings
  models  "env-*"
  chain   own
  timeout 500ms
  modules [trace(bodies: true)]
}
"""
    )
    env = {"UPSTREAM_KEY": ENV_KEY, "STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(tmp_path_factory.mktemp("keys"), {"main.pipe": pipe}, env=env) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def call(gw: Gateway, model: str, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json=body,
        timeout=10,
        headers={"authorization": f"Bearer {CALLER_KEY}"},
    ) as response:
        response.read()
    return response


def assert_clean(response: httpx.Response) -> None:
    everything = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    assert CALLER_KEY not in everything
    assert ENV_KEY not in everything
    assert "SECRET" not in everything and "ENVKEY" not in everything  # not even a fragment


def test_passthrough_forwards_the_callers_key(gw: Gateway, up: Upstream) -> None:
    gw.client(CALLER_KEY).chat.completions.create(
        model="pass-1", messages=[{"role": "user", "content": "x"}]
    )
    assert up.received[-1].headers["Authorization"] == f"Bearer {CALLER_KEY}"


def test_env_key_replaces_the_callers_key(gw: Gateway, up: Upstream) -> None:
    gw.client(CALLER_KEY).chat.completions.create(
        model="env-1", messages=[{"role": "user", "content": "x"}]
    )
    gw.client(CALLER_KEY).embeddings.create(model="env-embed", input="x", encoding_format="float")
    for seen in up.received:
        assert seen.headers["Authorization"] == f"Bearer {ENV_KEY}"
        assert all(CALLER_KEY not in value for value in seen.headers.values())


@pytest.mark.parametrize("route", ["pass", "env"])
@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(),
        Behaviour(status=500, echo_auth=True),
        Behaviour(status=400, echo_auth=True),
        Behaviour(status=401, echo_auth=True),
        Behaviour(status=429, echo_auth=True, headers={"retry-after": "1"}),
        Behaviour(delay=2),
    ],
    ids=["ok", "500-echo", "400-echo", "401-echo", "429-echo", "timeout"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_no_key_in_any_response(
    gw: Gateway, up: Upstream, route: str, behaviour: Behaviour, stream: bool
) -> None:
    up.script = [behaviour]
    response = call(gw, f"{route}-leak", stream=stream)
    assert_clean(response)
    if behaviour.echo_auth:
        assert response.status_code >= 400
        assert "[redacted]" in response.json()["error"]["message"]
        # the upstream really did see (and echo) the key we expect
        expected = CALLER_KEY if route == "pass" else ENV_KEY
        assert up.received[-1].headers["Authorization"] == f"Bearer {expected}"


def test_no_key_mid_stream(gw: Gateway, up: Upstream) -> None:
    for route in ("pass", "env"):
        up.script = [Behaviour(words=4, fail_after_chunks=1)]
        response = call(gw, f"{route}-mid", stream=True)
        assert '"error"' in response.text
        assert_clean(response)


def test_no_key_in_traces(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(status=500, echo_auth=True), Behaviour(status=400, echo_auth=True)]
    ids = [
        call(gw, "pass-t").headers["x-stockyard-trace-id"],
        call(gw, "env-t").headers["x-stockyard-trace-id"],
    ]
    for trace_id in ids:
        gw.trace(trace_id)
    listing = gw.api("GET", "/api/lookout/traces", params={"limit": 500})
    assert listing.status_code == 200
    texts = [listing.text] + [gw.api("GET", f"/api/lookout/traces/{t}").text for t in ids]
    for text in texts:
        assert CALLER_KEY not in text and ENV_KEY not in text


def test_no_key_in_gateway_log(gw: Gateway, up: Upstream) -> None:
    # runs last in this module: everything above has been logged by now
    up.script = [Behaviour(status=500, echo_auth=True), Behaviour(words=3, fail_after_chunks=1)]
    call(gw, "env-log")
    call(gw, "pass-log", stream=True)
    log = gw.log()
    assert "stream" in log  # the log is being written (the interrupted stream is logged)
    assert CALLER_KEY not in log
    assert ENV_KEY not in log
    assert "SECRET" not in log and "ENVKEY" not in log
