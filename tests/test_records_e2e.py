"""Traces, cost and spend end to end: the real gateway, the official openai SDK, loopback
upstreams. Every request kind must leave exactly one trace row with the right tokens and cost,
and the daily spend must equal the sum of the trace costs, to the last pico-dollar.

One gateway serves every test; each test sends its requests under its own project
(``x-stockyard-project``) and reads back only that project's records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from .harness import Behaviour, Gateway, Upstream, closed_url, overhead_ms, provider
from .records_support import (
    PRICES,
    expected_cost,
    get,
    ledger_events,
    trace_id,
    traces,
    wait_for,
)
from .records_support import wait_traces as _wait_traces

CALLER_KEY = "caller-Qm4Vt8Xw2Lp6-not-sk-shaped"
MESSAGES = [{"role": "user", "content": "hello"}]
# the harness upstream reports 11 prompt and 7 completion tokens for every chat answer
PROMPT, COMPLETION = 11, 7
MINI = expected_cost(PRICES["gpt-4o-mini"], PROMPT, COMPLETION)
OVERRIDE = (Decimal(3), Decimal(5), Decimal("0.5"))  # the `price "gpt-4.1-mini"` block below


class DetailedUsage(Upstream):
    """An upstream that reports cached prompt tokens and reasoning tokens, OpenAI-style."""

    USAGE: dict[str, Any] = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 128},
    }

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return web.json_response(
            {
                "id": "chatcmpl-detailed",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": self.USAGE,
            }
        )


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, Upstream]]:
    servers = {
        "primary": Upstream("primary"),
        "secondary": Upstream("secondary"),
        "detailed": DetailedUsage("detailed"),
        "liar": DetailedUsage("liar"),
    }
    # a provider reporting usage no request can have (beyond SQLite's 64-bit integers)
    servers["liar"].USAGE = {"prompt_tokens": 2**63, "completion_tokens": 18446744073709551615}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, Upstream]) -> Iterator[Gateway]:
    pipe = (
        provider("primary", ups["primary"].url)
        + provider("secondary", ups["secondary"].url)
        + provider("detailed", ups["detailed"].url)
        + provider("liar", ups["liar"].url)
        + provider("dead", closed_url())
        + """
price "gpt-4.1-mini" { input $3/1M  output $5/1M  cached $0.50/1M }

route failover {
  path    /v1/chat/completions
  models  "fo-*"
  chain   primary(model: "gpt-4o-mini") -> secondary(model: "gpt-4o-mini")
  modules [trace, audit]
}

route deadfirst {
  path    /v1/chat/completions
  models  "dead-*"
  chain   dead(model: "gpt-4o-mini") -> primary(model: "gpt-4o-mini")
  modules [trace, audit]
}

route bodies {
  path    /v1/chat/completions
  models  "body-*"
  chain   primary(model: "gpt-4o-mini")
  modules [trace(bodies: true, max_body: 1KiB), audit]
}

route detailed {
  path    /v1/chat/completions
  models  "gpt-4o-mini-cachetest"
  chain   detailed
  modules [trace, audit]
}

route liar {
  path    /v1/chat/completions
  models  "gpt-4o-liar"
  chain   liar
  modules [trace, audit]
}

route chat {
  path    /v1/chat/completions, /v1/embeddings
  chain   primary
  modules [trace, audit]
}
"""
    )
    gateway = Gateway(tmp_path_factory.mktemp("records"))
    gateway.write("main.pipe", pipe)
    try:
        yield gateway.start("--no-watch", timeout=60)
    finally:
        gateway.stop()


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, Upstream]) -> None:
    for server in ups.values():
        server.reset()


def client(gw: Gateway, project: str, key: str = CALLER_KEY) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gw.url}/v1",
        api_key=key,
        max_retries=0,
        timeout=20,
        default_headers={"x-stockyard-project": project},
    )


def chat(gw: Gateway, project: str, model: str, **kwargs: Any) -> str:
    """One non-streaming chat completion; returns its trace id (the call must succeed)."""
    kwargs.setdefault("messages", MESSAGES)
    raw = client(gw, project).chat.completions.with_raw_response.create(model=model, **kwargs)
    raw.parse()
    return trace_id(raw)


def failing(gw: Gateway, project: str, model: str, error: type[Exception], **kwargs: Any) -> str:
    """A chat completion that must fail with ``error``; returns its trace id."""
    with pytest.raises(error) as caught:
        client(gw, project).chat.completions.create(model=model, messages=MESSAGES, **kwargs)
    return trace_id(caught.value.response)  # type: ignore[attr-defined]


def wait_traces(gw: Gateway, project: str, count: int, **params: Any) -> list[dict[str, Any]]:
    return _wait_traces(gw, count, project=project, **params)


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def detail(gw: Gateway, tid: str) -> dict[str, Any]:
    return get(gw, f"/api/lookout/traces/{tid}")


def dollars(row: dict[str, Any]) -> Decimal | None:
    return None if row["cost"] is None else Decimal(row["cost"])


# --- one trace row per request kind ----------------------------------------------------------


def test_non_stream_trace(gw: Gateway, ups: dict[str, Upstream]) -> None:
    tid = chat(gw, "p-plain", "gpt-4o-mini")
    (row,) = wait_traces(gw, "p-plain", 1)
    assert row["id"] == tid
    assert row["route"] == "chat" and row["path"] == "/v1/chat/completions"
    assert row["model"] == row["served_model"] == "gpt-4o-mini"
    assert row["provider"] == "primary" and row["status"] == 200 and row["error"] is None
    assert row["stream"] is False and row["project"] == "p-plain"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (11, 7, 0)
    assert dollars(row) == MINI and row["priced"] is True
    assert row["latency_ms"] > 0 and row["overhead_ms"] is not None and row["ttft_ms"] is None
    assert [(a["provider"], a["status"], a["outcome"]) for a in row["attempts"]] == [
        ("primary", 200, "ok")
    ]
    assert "request_body" not in row  # the list never carries bodies
    full = detail(gw, tid)
    assert full["request_body"] is None and full["response_body"] is None  # bodies: false
    assert {k: v for k, v in full.items() if not k.endswith("_body")} == row


def test_overhead_header_is_the_traced_overhead(gw: Gateway, ups: dict[str, Upstream]) -> None:
    """The caller's `x-stockyard-overhead-ms` is the overhead the trace records, and neither
    counts the provider's time."""
    ups["primary"].default = Behaviour(delay=0.25)
    started = time.monotonic()
    raw = client(gw, "p-overhead").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    wall = time.monotonic() - started
    raw.parse()
    header = overhead_ms(raw.headers, wall, upstream=0.25)
    (row,) = wait_traces(gw, "p-overhead", 1)
    assert row["id"] == trace_id(raw)
    assert row["overhead_ms"] == pytest.approx(header, abs=0.0011)  # both to the microsecond
    assert row["overhead_ms"] + 250 < row["latency_ms"]  # the trace leaves it out too
    (attempt,) = row["attempts"]
    assert attempt["latency_ms"] >= 250


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_trace_uses_usage_from_the_stream(gw: Gateway, include_usage: bool) -> None:
    project = f"p-stream-{include_usage}"
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with client(gw, project).chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        **extra,  # type: ignore[arg-type]
    ) as response:
        tid = trace_id(response)
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage_chunks = [c.usage for c in chunks if c.usage]
    assert len(usage_chunks) == (1 if include_usage else 0)
    (row,) = wait_traces(gw, project, 1)
    assert row["id"] == tid and row["stream"] is True and row["status"] == 200
    assert (row["prompt_tokens"], row["completion_tokens"]) == (11, 7)
    assert dollars(row) == expected_cost(PRICES["gpt-4o"], 11, 7) and row["priced"] is True
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]


def test_failover_lists_every_attempt(gw: Gateway, ups: dict[str, Upstream]) -> None:
    ups["primary"].script = [Behaviour(status=503)]
    tid = chat(gw, "p-failover", "fo-anything")
    (row,) = wait_traces(gw, "p-failover", 1)
    assert row["id"] == tid and row["status"] == 200 and row["error"] is None
    assert row["route"] == "failover" and row["model"] == "fo-anything"
    assert row["served_model"] == "gpt-4o-mini" and row["provider"] == "secondary"
    attempts = row["attempts"]
    assert [(a["provider"], a["model"], a["status"], a["outcome"]) for a in attempts] == [
        ("primary", "gpt-4o-mini", 503, "error"),
        ("secondary", "gpt-4o-mini", 200, "ok"),
    ]
    assert "503" in attempts[0]["error"] or "primary says 503" in attempts[0]["error"]
    assert all(a["latency_ms"] > 0 for a in attempts)
    assert sum(a["latency_ms"] for a in attempts) <= row["latency_ms"]  # attempts fit in it
    assert dollars(row) == MINI  # only the answer that was served is billed


def test_connect_failure_attempt_recorded(gw: Gateway) -> None:
    tid = chat(gw, "p-dead", "dead-x")
    (row,) = wait_traces(gw, "p-dead", 1)
    assert row["id"] == tid and row["provider"] == "primary" and row["status"] == 200
    first, second = row["attempts"]
    assert first["provider"] == "dead" and first["status"] is None and first["outcome"] == "error"
    assert "dead" in first["error"] and first["error"]
    assert (second["provider"], second["outcome"]) == ("primary", "ok")


def test_upstream_errors_recorded(gw: Gateway, ups: dict[str, Upstream]) -> None:
    project = "p-upstream-errors"
    ups["primary"].script = [Behaviour(status=400), Behaviour(status=500), Behaviour(status=429)]
    bad = failing(gw, project, "gpt-4o-mini", openai.BadRequestError)
    broken = failing(gw, project, "gpt-4o-mini", openai.APIStatusError)
    limited = failing(gw, project, "gpt-4o-mini", openai.RateLimitError)
    rows = by_id(wait_traces(gw, project, 3))
    assert rows[bad]["status"] == 400 and "primary says 400" in rows[bad]["error"]
    assert rows[broken]["status"] == 502 and "primary says 500" in rows[broken]["error"]
    assert rows[limited]["status"] == 429 and "primary says 429" in rows[limited]["error"]
    for tid, status in ((bad, 400), (broken, 500), (limited, 429)):
        row = rows[tid]
        assert [(a["provider"], a["status"], a["outcome"]) for a in row["attempts"]] == [
            ("primary", status, "error")
        ]
        # nothing was served: nothing billed, and the cost is known to be zero
        assert dollars(row) == 0 and row["priced"] is True
        assert row["prompt_tokens"] == row["completion_tokens"] == 0


def test_failover_exhausted(gw: Gateway, ups: dict[str, Upstream]) -> None:
    ups["primary"].script = [Behaviour(status=500)]
    ups["secondary"].script = [Behaviour(status=502)]
    tid = failing(gw, "p-exhausted", "fo-x", openai.APIStatusError)
    (row,) = wait_traces(gw, "p-exhausted", 1)
    assert row["id"] == tid and row["status"] == 502
    assert "primary says 500" in row["error"] and "secondary says 502" in row["error"]
    assert [(a["provider"], a["status"]) for a in row["attempts"]] == [
        ("primary", 500),
        ("secondary", 502),
    ]
    assert row["provider"] is None and dollars(row) == 0


def test_validation_rejection_recorded(gw: Gateway, ups: dict[str, Upstream]) -> None:
    tid = failing(gw, "p-invalid", "gpt-4o-mini", openai.BadRequestError, temperature="hot")
    (row,) = wait_traces(gw, "p-invalid", 1)
    assert row["id"] == tid and row["status"] == 400 and row["route"] == "chat"
    assert "`temperature` must be a number" in row["error"]
    assert row["attempts"] == [] and row["provider"] is None
    assert dollars(row) == 0 and ups["primary"].count == 0


def test_client_disconnect_mid_stream(gw: Gateway, ups: dict[str, Upstream]) -> None:
    ups["primary"].default = Behaviour(words=400, chunk_delay=0.01)
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {CALLER_KEY}", "x-stockyard-project": "p-gone"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        tid = trace_id(response)
        for _chunk in response.iter_bytes():
            break  # read one chunk, then hang up
    assert ups["primary"].wait_for(lambda u: u.cancelled == 1, timeout=10)
    (row,) = wait_traces(gw, "p-gone", 1)
    assert row["id"] == tid and row["stream"] is True
    assert row["error"] == "client disconnected" and row["notes"].get("disconnected") is True
    # the usage chunk never came: the cost is unknown and flagged, not guessed and not $0
    assert row["cost"] is None and row["priced"] is False and "cost_unknown" in row["notes"]
    time.sleep(0.2)
    assert len(traces(gw, project="p-gone")) == 1


def test_client_gone_before_the_answer(gw: Gateway, ups: dict[str, Upstream]) -> None:
    ups["primary"].default = Behaviour(delay=3)
    headers = {"authorization": f"Bearer {CALLER_KEY}", "x-stockyard-project": "p-gave-up"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.url}/v1/chat/completions", headers=headers, timeout=0.5,
                   json={"model": "gpt-4o-mini", "messages": MESSAGES})  # fmt: skip
    (row,) = wait_traces(gw, "p-gave-up", 1)
    assert row["status"] == 499 and row["error"] == "client disconnected"
    assert row["provider"] is None and dollars(row) == 0
    (attempt,) = row["attempts"]
    assert attempt["provider"] == "primary" and "went away" in attempt["error"]
    assert ups["primary"].wait_for(lambda u: u.cancelled == 1)  # the upstream was told
    time.sleep(0.2)
    assert len(traces(gw, project="p-gave-up")) == 1


def test_embeddings_trace(gw: Gateway) -> None:
    raw = client(gw, "p-embed").embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="some text"
    )
    raw.parse()
    (row,) = wait_traces(gw, "p-embed", 1)
    assert row["id"] == trace_id(raw) and row["path"] == "/v1/embeddings"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 0)
    assert dollars(row) == expected_cost(PRICES["text-embedding-3-small"], 3, 0)


# --- cost -----------------------------------------------------------------------------------


def test_dated_model_id_uses_its_family_price(gw: Gateway) -> None:
    assert PRICES["gpt-4o-mini"]["input"] != PRICES["gpt-4o"]["input"]
    mini = chat(gw, "p-dated", "gpt-4o-mini-2024-07-18")
    big = chat(gw, "p-dated", "gpt-4o-2024-08-06")
    rows = by_id(wait_traces(gw, "p-dated", 2))
    assert dollars(rows[mini]) == MINI  # never gpt-4o's price
    assert dollars(rows[big]) == expected_cost(PRICES["gpt-4o"], 11, 7)


def test_price_block_overrides_the_table(gw: Gateway) -> None:
    assert PRICES["gpt-4.1-mini"]["input"] != OVERRIDE[0]
    tid = chat(gw, "p-override", "gpt-4.1-mini")
    dated = chat(gw, "p-override", "gpt-4.1-mini-2025-04-14")
    rows = by_id(wait_traces(gw, "p-override", 2))
    assert dollars(rows[tid]) == expected_cost(OVERRIDE, 11, 7) == Decimal("0.000068")
    assert dollars(rows[dated]) == expected_cost(OVERRIDE, 11, 7)


def test_cached_and_reasoning_tokens(gw: Gateway) -> None:
    tid = chat(gw, "p-cached", "gpt-4o-mini-cachetest")
    (row,) = wait_traces(gw, "p-cached", 1)
    assert row["id"] == tid
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1200, 300)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (1024, 128)
    # cached prompt tokens at the cached price; reasoning tokens are part of the completion
    assert dollars(row) == expected_cost(PRICES["gpt-4o-mini"], 1200, 300, cached=1024)


def test_unpriced_model_is_flagged_never_zero(gw: Gateway) -> None:
    tid = chat(gw, "p-unpriced", "mystery-model-9000")
    (row,) = wait_traces(gw, "p-unpriced", 1)
    assert row["id"] == tid and row["status"] == 200
    assert row["cost"] is None and row["priced"] is False
    assert row["notes"]["unpriced"] == "mystery-model-9000"
    spend = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": "project,model"})
    (mine,) = [r for r in spend["rows"] if r["project"] == "p-unpriced"]
    # nothing in this row could be priced: its cost is unknown, not $0
    assert mine["unpriced"] == 1 and mine["requests"] == 1 and mine["cost"] is None
    events = [e for e in ledger_events(gw) if e["detail"].get("trace_id") == tid]
    assert len(events) == 1 and events[0]["detail"]["cost"] is None


# --- bodies ---------------------------------------------------------------------------------


def test_bodies_are_kept_redacted_and_capped(gw: Gateway, ups: dict[str, Upstream]) -> None:
    ups["primary"].default = Behaviour(reply="echo sk-upstreamLEAK1234567890 done")
    secret_text = f"my key is {CALLER_KEY} and sk-proj-AbCdEfGh12345678 please"
    tid = chat(
        gw,
        "p-bodies",
        "body-small",
        messages=[{"role": "user", "content": secret_text}],
        extra_body={
            "api_key": 'hun"ter2-json-field',
            "x-api-key": "plain-field-secret",
            "metadata": {"Authorization": "Bearer zzz"},
        },
    )
    big = chat(gw, "p-bodies", "body-big", messages=[{"role": "user", "content": "x" * 5000}])
    wait_traces(gw, "p-bodies", 2)
    row = detail(gw, tid)
    request_body, response_body = row["request_body"], row["response_body"]
    assert request_body is not None and response_body is not None
    for leaked in (
        CALLER_KEY,
        "sk-proj-AbCdEfGh12345678",
        "ter2-json-field",
        "hun",
        "plain-field-secret",
        "sk-upstreamLEAK1234567890",
        "Bearer zzz",
    ):
        assert leaked not in request_body + response_body
    assert "[redacted]" in request_body and "[redacted]" in response_body
    sent = json.loads(request_body)
    assert sent["api_key"] == sent["x-api-key"] == "[redacted]"
    assert sent["metadata"] == {"Authorization": "[redacted]"}
    assert "please" in request_body and "done" in response_body
    capped = detail(gw, big)["request_body"]
    assert capped.endswith("…[truncated]") and len(capped) == 1024 + len("…[truncated]")
    assert '"stream"' not in capped and detail(gw, big)["response_body"].startswith("{")


def test_stream_bodies_kept(gw: Gateway) -> None:
    stream = client(gw, "p-body-stream").chat.completions.create(
        model="body-s", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    assert chunks
    (row,) = wait_traces(gw, "p-body-stream", 1)
    full = detail(gw, row["id"])
    assert full["response_body"].startswith("data: ") and "[DONE]" in full["response_body"]


# --- the traces API: filters, pagination -----------------------------------------------------


def test_filters_and_cursor_pagination(gw: Gateway, ups: dict[str, Upstream]) -> None:
    project = "p-filters"
    ok1 = chat(gw, project, "gpt-4o-mini")
    ok2 = chat(gw, project, "gpt-4o-mini")
    big = chat(gw, project, "gpt-4o")
    ups["primary"].script = [Behaviour(status=500), Behaviour(status=500)]
    err = failing(gw, project, "gpt-4o-mini", openai.APIStatusError)
    fo = chat(gw, project, "fo-filters")
    every = wait_traces(gw, project, 5)
    assert [r["id"] for r in every] == [fo, err, big, ok2, ok1]  # newest first

    def ids(**params: Any) -> set[str]:
        return {r["id"] for r in traces(gw, project=project, **params)}

    assert ids(model="gpt-4o") == {big}
    assert ids(model="gpt-4o-mini") == {ok1, ok2, err}
    assert ids(route="failover") == {fo}
    assert ids(route="chat") == {ok1, ok2, big, err}
    assert ids(provider="secondary") == {fo}
    assert ids(provider="primary") == {ok1, ok2, big}
    assert ids(status="error") == ids(status="502") == {err}
    assert ids(status="ok") == ids(status="200") == {ok1, ok2, big, fo}
    assert ids(route="chat", model="gpt-4o-mini", status="ok") == {ok1, ok2}
    assert traces(gw, project="no-such-project") == []

    seen: list[str] = []
    query: dict[str, Any] = {"project": project, "limit": 2}
    pages = 0
    while True:
        page = get(gw, "/api/lookout/traces", params=query)
        pages += 1
        assert page["count"] == len(page["traces"]) <= 2
        seen += [r["id"] for r in page["traces"]]
        if page["next"] is None:
            break
        assert page["next"] == page["traces"][-1]["id"]
        query["before"] = page["next"]
    assert pages == 3 and seen == [fo, err, big, ok2, ok1]

    for bad in ({"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"status": "weird"}):
        response = gw.api("GET", "/api/lookout/traces", params=bad)
        assert response.status_code == 400 and response.json()["error"]["message"]
    missing = gw.api("GET", "/api/lookout/traces/000000000000deadbeef0000")
    assert missing.status_code == 404


# --- spend ------------------------------------------------------------------------------------


def test_spend_equals_the_sum_of_trace_costs(gw: Gateway, ups: dict[str, Upstream]) -> None:
    project = "p-spend"
    for model in (
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o",
        "gpt-4.1-mini",
        "mystery-model-1",
        "fo-spend",
        "gpt-4o-mini-cachetest",
    ):
        chat(gw, project, model)
    list(
        client(gw, project).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )
    client(gw, project).embeddings.create(model="text-embedding-3-small", input="abc")
    ups["primary"].script = [Behaviour(status=500)]
    failing(gw, project, "gpt-4o-mini", openai.APIStatusError)
    rows = wait_traces(gw, project, 11)
    costs = [dollars(r) for r in rows]
    total = sum((c for c in costs if c is not None), Decimal(0))
    assert costs.count(None) == 1  # mystery-model-1

    spend = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": "project"})
    (mine,) = [r for r in spend["rows"] if r["project"] == project]
    assert Decimal(mine["cost"]) == total and "E" not in mine["cost"]
    assert mine["requests"] == 11 and mine["unpriced"] == 1
    assert mine["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert mine["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert mine["cached_tokens"] == sum(r["cached_tokens"] for r in rows) == 1024

    # per served model and provider
    by_model = get(
        gw, "/api/lookout/spend", params={"days": 1, "group_by": "project,route,model,provider"}
    )["rows"]
    mine_rows = [r for r in by_model if r["project"] == project]
    for row in mine_rows:
        matching = [
            t
            for t in rows
            if t["route"] == row["route"]
            and (t["served_model"] or t["model"]) == row["model"]
            and (t["provider"] or "") == row["provider"]
        ]
        assert row["requests"] == len(matching), row
        assert row["unpriced"] == len([t for t in matching if t["cost"] is None]), row
        if row["unpriced"] == row["requests"]:
            assert row["cost"] is None  # unknown, never $0
        else:
            priced = sum((dollars(t) or Decimal(0) for t in matching), Decimal(0))
            assert Decimal(row["cost"]) == priced
    assert sum(r["requests"] for r in mine_rows) == 11

    # the grand total covers every project: equal to every trace's cost in the database
    everything = traces(gw)
    whole = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": ""})
    assert Decimal(whole["total_cost"]) == sum(
        (dollars(t) or Decimal(0) for t in everything), Decimal(0)
    )
    assert whole["unpriced"] == len([t for t in everything if t["cost"] is None]) >= 2
    assert whole["rows"][0]["requests"] == len(everything)
    by_day = get(gw, "/api/lookout/spend", params={"days": 1})
    assert [r["day"] for r in by_day["rows"]] == [time.strftime("%Y-%m-%d", time.gmtime())]
    for bad in ({"days": "0"}, {"days": "x"}, {"group_by": "colour"}):
        assert gw.api("GET", "/api/lookout/spend", params=bad).status_code == 400


def test_every_request_is_in_the_ledger(gw: Gateway) -> None:
    tid = chat(gw, "p-ledger", "gpt-4o-mini")
    wait_traces(gw, "p-ledger", 1)
    events = ledger_events(gw)
    (event,) = [e for e in events if e["detail"].get("trace_id") == tid]
    assert event["type"] == "request" and event["resource"] == "route:chat"
    assert event["actor"] == "project:p-ledger" and event["action"] == "POST /v1/chat/completions"
    assert event["detail"]["cost"] == format(MINI, "f") and event["detail"]["status"] == 200
    verify = get(gw, "/api/trust/ledger/verify")
    assert verify["valid"] is True and verify["events_checked"] == len(events) >= 1
    assert verify["head_hash"] == events[-1]["hash"]
    assert get(gw, "/api/brand/ledger/verify") == verify


def test_metrics_agree_with_the_traces(gw: Gateway) -> None:
    """/metrics counts what the traces hold (every route here has `trace`)."""
    chat(gw, "p-metrics", "gpt-4o-mini")
    wait_traces(gw, "p-metrics", 1)
    everything = traces(gw)
    text = gw.api("GET", "/metrics").text
    samples: dict[str, Decimal] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = Decimal(value)

    def total(prefix: str, **labels: str) -> Decimal:
        return sum(
            (v for k, v in samples.items() if k.startswith(prefix + "{") or k == prefix
             if all(f'{a}="{b}"' in k for a, b in labels.items())),
            Decimal(0),
        )  # fmt: skip

    assert total("stockyard_requests_total") == len(everything)
    assert total("stockyard_errors_total") == len(
        [t for t in everything if t["status"] >= 400 or t["error"]]
    )
    assert total("stockyard_tokens_total", kind="prompt") == sum(
        t["prompt_tokens"] for t in everything
    )
    assert total("stockyard_tokens_total", kind="completion") == sum(
        t["completion_tokens"] for t in everything
    )
    assert total("stockyard_cost_dollars_total") == sum(
        (dollars(t) or Decimal(0) for t in everything), Decimal(0)
    )
    assert samples['stockyard_request_duration_seconds_bucket{le="+Inf"}'] == len(everything)
    assert samples["stockyard_request_duration_seconds_count"] == len(everything)
    buckets = [
        v for k, v in samples.items() if k.startswith("stockyard_request_duration_seconds_bucket")
    ]
    assert buckets == sorted(buckets)  # cumulative
    depth = samples["stockyard_store_queue_depth"]
    assert depth == depth.to_integral_value() and depth >= 0  # a count of queued records
    assert samples["stockyard_reloads_total"] >= 1


def test_admin_reload_by_a_loopback_caller_is_in_the_ledger(gw: Gateway) -> None:
    """No admin key is configured here: loopback callers are served, as `admin:loopback`."""
    before = ledger_events(gw)[-1]["seq"]
    response = gw.api("POST", "/api/proxy/reload")
    assert response.status_code == 200 and response.json()["ok"] is True

    def reloads() -> list[dict[str, Any]]:
        return [e for e in ledger_events(gw) if e["seq"] > before and e["type"] == "config"]

    (event,) = wait_for(reloads)
    assert (event["actor"], event["action"]) == ("admin:loopback", "reload.applied")
    assert event["detail"]["reason"] == "api"


def test_impossible_usage_is_flagged_and_recording_goes_on(gw: Gateway) -> None:
    """Token counts beyond 64 bits once stopped the store's writer (and, with its queue
    full, every request after): now they are flagged, and everything is still recorded."""
    liar = chat(gw, "p-liar", "gpt-4o-liar")
    after = chat(gw, "p-liar", "gpt-4o-mini")
    rows = by_id(wait_traces(gw, "p-liar", 2))
    assert rows[liar]["notes"]["usage_out_of_range"][:2] == [str(2**63), str(2**64 - 1)]
    assert rows[liar]["cost"] is None and rows[liar]["prompt_tokens"] == 0
    assert dollars(rows[after]) == MINI
    spend = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": "project"})
    (mine,) = [r for r in spend["rows"] if r["project"] == "p-liar"]
    assert mine["requests"] == 2 and mine["unpriced"] == 1
    assert get(gw, "/api/trust/ledger/verify")["valid"] is True
