"""``rate_limit`` end to end through the real server and the official SDK: N requests pass,
the next gets 429 (``openai.RateLimitError``) with Retry-After and the ``x-ratelimit-*``
headers, successful answers carry them too, the bucket refills after the window; scopes per
project, per key (gateway keys from ``POST /api/keys``) and per route; token limits take an
estimate at admission and are corrected with the usage the provider reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, provider, running_gateway

PIPE = """
route per_project {
  path    /v1/chat/completions
  models  "rl-p-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 3/min, per: project)]
}

route per_key {
  path    /v1/chat/completions
  models  "rl-k-*"
  chain   up
  modules [trace, audit, auth, rate_limit(requests: 2/min, per: key)]
}

route per_second {
  path    /v1/chat/completions
  models  "rl-s-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 2/s, per: route)]
}

route tokens {
  path    /v1/chat/completions
  models  "rl-t-*"
  chain   up
  modules [trace, audit, rate_limit(tokens: 50/day, per: route)]
}

route big {
  path    /v1/chat/completions
  models  "rl-b-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 100/day, tokens: 50/day, per: route)]
}

route refund {
  path    /v1/chat/completions
  models  "rl-r-*"
  chain   up
  modules [trace, audit, rate_limit(tokens: 20/day, per: route)]
}

route half {
  path    /v1/chat/completions
  models  "rl-h-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 0.5/s, per: route)]
}

route toggled {
  path    /v1/chat/completions
  models  "rl-o-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 2/day, per: project)]
}

route per_ip {
  path    /v1/chat/completions
  models  "rl-i-*"
  chain   up
  modules [trace, audit, rate_limit(requests: 1/min, per: ip)]
}
"""

HI = [{"role": "user", "content": "hi"}]
# The prompt estimate of HI: 4 (message) + ceil(len("user") + len("hi") bytes / 2) + 3 (reply).
HI_ESTIMATE = 10
# What the harness upstream reports for every answer: 11 prompt + 7 completion tokens.
ACTUAL = 18


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("limited")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    files = {"main.pipe": provider("up", up.url) + PIPE}
    with running_gateway(
        tmp_path_factory.mktemp("ratelimit"), files, env=env, start_timeout=60
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def ask(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    """A chat completion; the raw response (headers and the parsed body)."""
    return client.chat.completions.with_raw_response.create(model=model, messages=HI, **extra)


def assert_limited(
    error: openai.RateLimitError, kind: str = "requests", remaining: str = "0"
) -> None:
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_error"
    headers = error.response.headers
    assert int(headers["retry-after"]) >= 1
    assert int(headers["retry-after-ms"]) >= 1
    assert headers[f"x-ratelimit-remaining-{kind}"] == remaining
    assert headers[f"x-ratelimit-limit-{kind}"]
    assert headers[f"x-ratelimit-reset-{kind}"]


def test_pipeline_checks_clean(gw: Gateway) -> None:
    result = gw.check()
    assert result.returncode == 0, result.stdout + result.stderr


def test_n_pass_then_429_with_headers_per_project(gw: Gateway, up: Upstream) -> None:
    client = gw.client(default_headers={"x-stockyard-project": "alpha"})
    remaining = []
    for _ in range(3):
        raw = ask(client, "rl-p-1")
        assert raw.parse().choices[0].message.content == "limited answers rl-p-1"
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "rl-p-1")
    assert_limited(caught.value)
    # 3/min refills one request every 20 s
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 20
    assert "3/min requests per project `alpha`" in caught.value.message
    assert up.count == 3
    trace = gw.trace(caught.value.response.headers["x-stockyard-trace-id"])
    assert trace["status"] == 429 and trace["notes"]["blocked_by"] == "rate_limit"
    # another project has its own bucket; a stream is limited the same way
    other = gw.client(default_headers={"x-stockyard-project": "beta"})
    stream = ask(other, "rl-p-1", stream=True)
    assert stream.headers["x-ratelimit-remaining-requests"] == "2"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="rl-p-1", messages=HI, stream=True)
    assert_limited(caught.value)


def test_bucket_refills_after_the_window(gw: Gateway, up: Upstream) -> None:
    client = gw.client()
    passed = 0
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(20):  # 2/s: the third within half a second is refused
            ask(client, "rl-s-1")
            passed += 1
    assert passed >= 2  # (more only if the machine took over half a second per request)
    assert_limited(caught.value)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1" and int(headers["retry-after-ms"]) <= 500
    assert up.count == passed
    time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.05)
    ask(client, "rl-s-1")  # refilled enough for one
    time.sleep(1.05)  # a whole window: the bucket is full again
    assert ask(client, "rl-s-1").headers["x-ratelimit-remaining-requests"] == "1"
    assert up.count == passed + 2


def test_fractional_rate(gw: Gateway, up: Upstream) -> None:
    """`0.5/s` holds one request and refills it in two seconds."""
    client = gw.client()
    raw = ask(client, "rl-h-1")
    assert raw.headers["x-ratelimit-limit-requests"] == "0.5"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "rl-h-1")
    assert 1000 < int(caught.value.response.headers["retry-after-ms"]) <= 2000
    assert caught.value.response.headers["retry-after"] == "2"


def test_per_key_buckets(gw: Gateway, up: Upstream) -> None:
    first = gw.create_key("shared-team", name="first")
    second = gw.create_key("shared-team", name="second")
    one, two = gw.client(api_key=first["key"]), gw.client(api_key=second["key"])
    for _ in range(2):
        ask(one, "rl-k-1")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(one, "rl-k-1")
    assert_limited(caught.value)
    assert f"per key `{first['id']}`" in caught.value.message
    # the other key of the same project is not affected
    raw = ask(two, "rl-k-1")
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert trace["key_id"] == second["id"] and trace["project"] == "shared-team"
    # no key: auth refuses before the limiter is reached
    with pytest.raises(openai.AuthenticationError):
        ask(gw.client(), "rl-k-1")
    assert up.count == 3


def test_token_bucket_is_corrected_with_actual_usage(gw: Gateway, up: Upstream) -> None:
    client = gw.client()
    seen = []
    for _ in range(3):
        raw = ask(client, "rl-t-1")
        seen.append(int(raw.headers["x-ratelimit-remaining-tokens"]))
        assert raw.headers["x-ratelimit-limit-tokens"] == "50"
        trace = gw.trace(raw.headers["x-stockyard-trace-id"])  # recorders have run
        assert trace["notes"]["rate_limit"] == {
            "tokens_estimate": HI_ESTIMATE,
            "tokens_actual": ACTUAL,
        }
    # 50 - 10 = 40 at admission, then corrected by 18 - 10 = 8 after each answer
    assert seen == [40, 22, 4]
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "rl-t-1")  # 50 - 3 * 18 = -4 left: 10 are needed
    assert_limited(caught.value, "tokens")
    assert "50/day tokens per route `tokens`" in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) > 60
    assert up.count == 3


def test_a_request_larger_than_the_bucket_waits_for_a_full_bucket(
    gw: Gateway, up: Upstream
) -> None:
    client = gw.client()
    raw = ask(client, "rl-b-1", max_tokens=1000)  # estimate 1010 > 50: takes the full bucket
    assert raw.headers["x-ratelimit-remaining-tokens"] == "0"
    gw.trace(raw.headers["x-stockyard-trace-id"])  # corrected: 50 - 18 = 32 left
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "rl-b-1", max_tokens=1000)
    assert_limited(caught.value, "tokens", remaining="32")  # 50 needed
    raw = ask(client, "rl-b-1", max_tokens=5)  # 15 fit in 32
    assert raw.headers["x-ratelimit-remaining-tokens"] == "17"
    assert raw.headers["x-ratelimit-remaining-requests"] == "98"  # the refused one took none
    assert up.count == 2


def test_tokens_of_an_unserved_request_are_given_back(gw: Gateway, up: Upstream) -> None:
    client = gw.client()
    up.script = [Behaviour(status=400)]
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "rl-r-1")
    gw.trace(caught.value.response.headers["x-stockyard-trace-id"])
    raw = ask(client, "rl-r-1")  # 20 tokens again, not 10
    assert raw.headers["x-ratelimit-remaining-tokens"] == "10"


def test_per_ip(gw: Gateway, up: Upstream) -> None:
    ask(gw.client(), "rl-i-1")
    response = httpx.post(
        f"{gw.url}/v1/chat/completions", json={"model": "rl-i-1", "messages": HI}, timeout=10
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert "per ip `127.0.0.1`" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 1
    assert up.count == 1


def test_buckets_survive_runtime_toggles(gw: Gateway, up: Upstream) -> None:
    """A toggle rebuilds the handlers; the buckets are shared state and stay. A new limit is
    a new (full) bucket; removing the override returns to the old, still empty one."""
    client = gw.client(default_headers={"x-stockyard-project": "toggled"})
    for _ in range(2):
        ask(client, "rl-o-1")
    with pytest.raises(openai.RateLimitError):
        ask(client, "rl-o-1")

    def put(params: dict[str, Any]) -> None:
        body = {"params": params, "route": "toggled"}
        response = gw.api("PUT", "/api/proxy/modules/rate_limit", json=body)
        assert response.status_code == 200, response.text

    try:
        put({"requests": "2/day", "per": "project"})  # the same limit: rebuilt, bucket kept
        with pytest.raises(openai.RateLimitError):
            ask(client, "rl-o-1")
        put({"requests": "10/day"})
        raw = ask(client, "rl-o-1")
        assert raw.headers["x-ratelimit-limit-requests"] == "10"
        assert raw.headers["x-ratelimit-remaining-requests"] == "9"
        bad = gw.api(
            "PUT",
            "/api/proxy/modules/rate_limit",
            json={"params": {"requests": "lots"}, "route": "toggled"},
        )
        assert bad.status_code == 400
    finally:
        assert gw.api("DELETE", "/api/proxy/modules/rate_limit?route=toggled").status_code == 200
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "rl-o-1")
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "2"
    assert up.count == 3


def test_a_partial_params_override_is_accepted(gw: Gateway) -> None:
    body = {"params": {"per": "project"}, "route": "per_project"}
    response = gw.api("PUT", "/api/proxy/modules/rate_limit", json=body)
    if response.status_code == 200:
        gw.api("DELETE", "/api/proxy/modules/rate_limit?route=per_project")
    assert response.status_code == 200, response.text
