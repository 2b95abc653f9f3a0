"""Dispatch policy end to end: failover (500, 429, timeout, connection refused) with the per-hop
model rewrite, no failover on 400, retries honouring Retry-After, weighted load balancing, the
first-token timeout. One gateway serves every scenario; routes are picked by model name.

Timeouts are shown without upper-bound clocks: a stalled upstream stalls for longer than the
client's own patience (`Gateway.client`: 20 s), so a test passes only if the gateway cut the
attempt, and the trace says which timeout did it."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, closed_url, provider, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def a() -> Iterator[Upstream]:
    server = Upstream("alpha")
    yield server
    server.close()


@pytest.fixture(scope="module")
def b() -> Iterator[Upstream]:
    server = Upstream("beta")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, a: Upstream, b: Upstream) -> Iterator[Gateway]:
    pipe = (
        provider("alpha", a.url)
        + provider("beta", b.url)
        + provider("dead", closed_url())
        + """
route failover {
  path     /v1/chat/completions
  models   "fo-*"
  chain    alpha(model: "alpha-model") -> beta(model: "beta-model")
  failover on [5xx, 429, timeout, connect]
  timeout  1s
  modules  [trace]
}

route connect {
  path   /v1/chat/completions
  models "conn-*"
  chain  dead(model: "dead-model") -> beta(model: "beta-model")
  modules [trace]
}

route retrying {
  path   /v1/chat/completions
  models "retry-*"
  chain  alpha -> beta(model: "beta-model")
  retry  2 backoff 50ms max_backoff 2s
  timeout 5s
  modules [trace]
}

route balanced {
  path   /v1/chat/completions
  models "lb-*"
  chain  alpha(weight: 3) | beta
}

route first_token {
  path    /v1/chat/completions
  models  "ft-*"
  chain   alpha(model: "alpha-model") -> beta(model: "beta-model")
  timeout 60s first_token 300ms
  modules [trace]
}

route no_timeout_failover {
  path     /v1/chat/completions
  models   "only5xx-*"
  chain    alpha -> beta
  failover on [5xx]
  timeout  500ms
}
"""
    )
    # Many failures on purpose: keep the breakers out of these tests (test_gateway_breaker).
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(
        tmp_path_factory.mktemp("failover"), {"main.pipe": pipe}, env=env
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(a: Upstream, b: Upstream) -> None:
    a.reset()
    b.reset()


# Longer than any client here waits (20 s): only a cut by the gateway lets such a test pass.
STALL = 120.0


def chat(gw: Gateway, model: str, **kwargs: object) -> tuple[str, httpx.Headers]:
    raw = gw.client().chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, **kwargs
    )  # type: ignore[arg-type]
    return raw.parse().choices[0].message.content or "", raw.headers


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_failover_on_status_rewrites_model_per_hop(
    gw: Gateway, a: Upstream, b: Upstream, status: int
) -> None:
    a.script = [Behaviour(status=status)]
    text, headers = chat(gw, "fo-gpt")
    assert text == "beta answers beta-model"
    assert headers["x-stockyard-provider"] == "beta"
    assert a.models() == ["alpha-model"]
    assert b.models() == ["beta-model"]
    attempts = gw.trace(headers["x-stockyard-trace-id"])["attempts"]
    assert [(t["provider"], t["model"], t["status"], t["outcome"]) for t in attempts] == [
        ("alpha", "alpha-model", status, "error"),
        ("beta", "beta-model", 200, "ok"),
    ]
    assert all(t["latency_ms"] > 0 for t in attempts)
    assert status == 429 or str(status) in attempts[0]["error"]


def test_failover_on_timeout(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(delay=STALL)]  # far longer than the route's 1 s
    started = time.monotonic()
    text, headers = chat(gw, "fo-slow")
    elapsed = time.monotonic() - started
    assert text == "beta answers beta-model"  # cut: alpha never answered
    assert elapsed > 0.9, elapsed  # not before the route's 1 s
    assert a.models() == ["alpha-model"] and b.models() == ["beta-model"]
    # the gateway hung up on the slow upstream instead of leaving the request running
    assert a.wait_for(lambda u: u.cancelled == 1)
    attempts = gw.trace(headers["x-stockyard-trace-id"])["attempts"]
    assert attempts[0]["status"] is None and "timeout" in attempts[0]["error"]


def test_failover_on_connection_refused(gw: Gateway, b: Upstream) -> None:
    text, headers = chat(gw, "conn-x")
    assert text == "beta answers beta-model"
    assert b.models() == ["beta-model"]
    attempts = gw.trace(headers["x-stockyard-trace-id"])["attempts"]
    assert attempts[0]["provider"] == "dead" and attempts[0]["model"] == "dead-model"
    assert "cannot reach dead" in attempts[0]["error"]
    assert attempts[1]["outcome"] == "ok"


def test_stream_fails_over_before_first_byte(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(status=500)]
    chunks = list(gw.client().chat.completions.create(model="fo-s", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "beta answers beta-model"
    )
    assert a.models() == ["alpha-model"] and b.models() == ["beta-model"]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_no_failover_on_client_errors(gw: Gateway, a: Upstream, b: Upstream, status: int) -> None:
    a.script = [
        Behaviour(
            status=status,
            body={
                "error": {
                    "message": "alpha rejects this: bad field `foo`",
                    "type": "invalid_request_error",
                    "param": "foo",
                    "code": None,
                }
            },
        )
    ]
    with pytest.raises(openai.APIStatusError) as caught:
        chat(gw, "fo-bad")
    assert caught.value.status_code == status
    assert "alpha rejects this: bad field `foo`" in caught.value.message
    assert a.count == 1
    assert b.count == 0


def test_no_failover_on_timeout_when_not_listed(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(delay=3)]
    with pytest.raises(openai.APIStatusError) as caught:
        chat(gw, "only5xx-x")
    assert caught.value.status_code == 504
    assert b.count == 0


def test_retry_honours_retry_after(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(status=429, headers={"retry-after": "1"})]  # then answers normally
    text, headers = chat(gw, "retry-x")
    assert text == "alpha answers retry-x"
    assert a.count == 2 and b.count == 0
    gap = a.received[1].at - a.received[0].at
    assert gap >= 0.95, f"retried after {gap:.3f}s, Retry-After said 1s"
    attempts = gw.trace(headers["x-stockyard-trace-id"])["attempts"]
    assert [(t["provider"], t["status"], t["outcome"]) for t in attempts] == [
        ("alpha", 429, "error"),
        ("alpha", 200, "ok"),
    ]


def test_retry_after_ms_header(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(status=503, headers={"retry-after-ms": "400"})]
    chat(gw, "retry-ms")
    assert a.count == 2 and b.count == 0
    assert a.received[1].at - a.received[0].at >= 0.38


def test_retry_after_longer_than_max_backoff_fails_over(
    gw: Gateway, a: Upstream, b: Upstream
) -> None:
    # longer than the client waits: a pass proves the gateway did not sleep on it
    a.script = [Behaviour(status=429, headers={"retry-after": str(int(STALL))})]
    text, headers = chat(gw, "retry-y")
    assert text == "beta answers beta-model"
    assert a.count == 1 and b.models() == ["beta-model"]
    attempts = gw.trace(headers["x-stockyard-trace-id"])["attempts"]
    assert [(t["provider"], t["status"], t["outcome"]) for t in attempts] == [
        ("alpha", 429, "error"),
        ("beta", 200, "ok"),
    ]


def test_retries_back_off_exponentially(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.script = [Behaviour(status=500), Behaviour(status=500)]
    text, _ = chat(gw, "retry-z")
    assert text == "alpha answers retry-z"
    assert a.count == 3 and b.count == 0
    first, second = (a.received[i + 1].at - a.received[i].at for i in range(2))
    assert first >= 0.024  # 50 ms with jitter in [0.5, 1)
    assert second >= 0.049  # 100 ms with jitter


def test_retries_exhausted_then_failover(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.default = Behaviour(status=500)
    text, _ = chat(gw, "retry-w")
    assert text == "beta answers beta-model"
    assert a.count == 3  # one try and two retries
    assert b.count == 1


def test_weighted_load_balancing(gw: Gateway, a: Upstream, b: Upstream) -> None:
    n = 400
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for i in range(n):
            response = client.post(
                "/v1/chat/completions", json={"model": f"lb-{i}", "messages": MESSAGES}
            )
            assert response.status_code == 200
    assert a.count + b.count == n
    # alpha has weight 3 of 4: mean 300, sd 8.7. [250, 350] is ±5.8 sd: P(flake) < 1e-8.
    assert 250 <= a.count <= 350, (a.count, b.count)


def test_tier_fails_over_within_tier(gw: Gateway, a: Upstream, b: Upstream) -> None:
    a.default = Behaviour(status=500)
    for i in range(20):
        text, _ = chat(gw, f"lb-fail-{i}")
        assert text.startswith("beta answers")
    assert b.count == 20


def first_token_stream(gw: Gateway, model: str) -> tuple[str, str]:
    """Stream through the `first_token` route: the text and the trace id. The route's total
    timeout (60 s) outlasts the client (20 s), so only the first-token timeout can save it."""
    try:
        with gw.client().chat.completions.with_streaming_response.create(
            model=model,
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        ) as response:
            trace_id = response.headers["x-stockyard-trace-id"]
            chunks = list(response.parse())
    except openai.APITimeoutError:
        pytest.fail("the first-token timeout (300 ms) did not cut the stalled upstream")
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), trace_id


def assert_cut_by_first_token(gw: Gateway, trace_id: str) -> None:
    attempts = gw.trace(trace_id)["attempts"]
    assert [(t["provider"], t["model"], t["outcome"]) for t in attempts] == [
        ("alpha", "alpha-model", "error"),
        ("beta", "beta-model", "ok"),
    ]
    assert attempts[0]["status"] is None
    assert "alpha sent no first token within 300ms" in attempts[0]["error"], attempts[0]
    assert attempts[0]["latency_ms"] >= 290  # not before the first-token timeout


def test_first_token_timeout_after_headers_fails_over(
    gw: Gateway, a: Upstream, b: Upstream
) -> None:
    a.script = [Behaviour(first_chunk_delay=STALL)]  # headers at once, then nothing
    text, trace_id = first_token_stream(gw, "ft-x")
    assert text == "beta answers beta-model"
    assert a.wait_for(lambda u: u.cancelled == 1)
    assert_cut_by_first_token(gw, trace_id)


def test_first_token_timeout_before_headers_fails_over(
    gw: Gateway, a: Upstream, b: Upstream
) -> None:
    """The first-token clock starts with the request, not when the upstream sends headers."""
    a.script = [Behaviour(delay=STALL)]  # no headers at all; route timeout 60 s, first_token 300 ms
    text, trace_id = first_token_stream(gw, "ft-y")
    assert text == "beta answers beta-model"
    assert a.wait_for(lambda u: u.cancelled == 1)
    assert_cut_by_first_token(gw, trace_id)


def test_first_token_timeout_does_not_apply_to_plain_requests(
    gw: Gateway, a: Upstream, b: Upstream
) -> None:
    a.script = [Behaviour(delay=0.6)]  # over first_token, under the route timeout
    text, _ = chat(gw, "ft-plain")
    assert text == "alpha answers alpha-model"
    assert b.count == 0


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "1e400", "Wed, 99 Foo 2026 99:99:99 GMT"])
def test_garbage_retry_after_is_ignored(gw: Gateway, a: Upstream, b: Upstream, value: str) -> None:
    """A Retry-After that is neither seconds nor an HTTP date is ignored, not a gateway crash."""
    a.script = [Behaviour(status=429, headers={"retry-after": value})]
    text, _ = chat(gw, "fo-garbage")
    assert text == "beta answers beta-model"


def test_retry_after_as_http_date(gw: Gateway, a: Upstream, b: Upstream) -> None:
    due = int(time.time() + 1.5)  # HTTP dates have whole seconds: 0.5 to 1.5 s from now
    a.script = [
        Behaviour(status=503, headers={"retry-after": email.utils.formatdate(due, usegmt=True)})
    ]
    text, _ = chat(gw, "retry-date")
    assert text == "alpha answers retry-date"
    assert a.count == 2 and b.count == 0
    retried_at = time.time() - (time.monotonic() - a.received[1].at)  # wall clock
    assert retried_at >= due - 0.05, f"retried {due - retried_at:.3f}s before the date"
