"""The ``cache`` module end to end: the real gateway, the official openai SDK, loopback upstreams
that record what they received (so "no upstream call" is checked, not assumed).

One gateway serves most tests; each test asks its own questions (a fresh prompt) and, where it
reads counters, under its own project, so tests never see each other's entries.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from stockyard.modules.cache import CacheState, Entry, cache_key
from stockyard.store.database import Store

from .fake_providers import FakeAnthropic, Say
from .harness import Behaviour, Gateway, Upstream, provider

# the harness upstream reports 11 prompt and 7 completion tokens for every chat answer
START = 60  # seconds a gateway may take to come up on a busy machine
COST = (11 * Decimal("1.25") + 7 * Decimal("10")) / Decimal(1_000_000)  # the price block below


def pipeline(url: str, claude_url: str | None = None) -> str:
    anthropic = (
        ""
        if claude_url is None
        else f"""
provider claude {{
  kind       anthropic
  base_url   "{claude_url}"
  api_key    passthrough
  max_tokens 1000
}}

price "claude-test" {{ input $3/1M  output $15/1M }}

route claude {{
  path    /v1/chat/completions
  models  "claude-test"
  chain   claude
  modules [trace, cache]
}}
"""
    )
    return (
        anthropic
        + provider("up", url)
        + """
price "cm-main" { input $1.25/1M  output $10.00/1M }
price "cm-ttl"  { input $1.25/1M  output $10.00/1M }
price "cm-lru"  { input $1.25/1M  output $10.00/1M }
price "cm-nostream" { input $1.25/1M  output $10.00/1M }
price "cm-toggled" { input $1.25/1M  output $10.00/1M }
price "cm-keyed" { input $1.25/1M  output $10.00/1M }

route main {
  path    /v1/chat/completions, /v1/embeddings
  models  "cm-main"
  chain   up
  modules [trace, cache(ttl: 1h, max_entries: 1000)]
}

route short {
  path    /v1/chat/completions
  models  "cm-ttl"
  chain   up
  modules [trace, cache(ttl: 1s)]
}

route small {
  path    /v1/chat/completions
  models  "cm-lru"
  chain   up
  modules [trace, cache(max_entries: 2)]
}

route keyed {
  path    /v1/chat/completions
  models  "cm-keyed"
  chain   up
  modules [trace, auth, cache]
}

route toggled {
  path    /v1/chat/completions
  models  "cm-toggled"
  chain   up
  modules [trace, cache(ttl: 1h)]
}

route nostream {
  path    /v1/chat/completions
  models  "cm-nostream"
  chain   up
  modules [trace, cache(streams: false)]
}
"""
    )


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("cached")
    yield server
    server.close()


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic("claude")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, up: Upstream, claude: FakeAnthropic
) -> Iterator[Gateway]:
    gateway = Gateway(
        tmp_path_factory.mktemp("cache"), env={"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    )
    gateway.write("main.pipe", pipeline(up.url, claude.url))
    try:
        yield gateway.start(timeout=START)
    finally:
        gateway.stop()


@pytest.fixture(autouse=True)
def _fresh(up: Upstream, claude: FakeAnthropic) -> None:
    up.reset()
    claude.reset()


@pytest.fixture
def client(gw: Gateway) -> openai.OpenAI:
    return gw.client()


def ask() -> list[dict[str, str]]:
    """A question no other test asks."""
    return [{"role": "user", "content": f"question {uuid.uuid4().hex}"}]


def chat(
    client: openai.OpenAI,
    messages: list[dict[str, str]],
    model: str = "cm-main",
    project: str | None = None,
    **params: Any,
) -> Any:
    headers = {"X-Stockyard-Project": project} if project else None
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=messages,
        extra_headers=headers,
        **params,  # type: ignore[arg-type]
    )


def streamed(
    client: openai.OpenAI, messages: list[dict[str, str]], model: str = "cm-main", **params: Any
) -> tuple[str, Any, list[Any]]:
    """Stream through the SDK: (the text it assembled, the raw response, the parsed chunks)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=messages,
        stream=True,
        **params,  # type: ignore[arg-type]
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, raw, chunks


def stats(gw: Gateway, **params: str) -> dict[str, Any]:
    response = gw.api("GET", "/api/cache/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- hits and misses ------------------------------------------------------------------------


def test_repeat_is_a_hit_with_the_identical_body_and_no_upstream_call(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    messages = ask()
    first = chat(client, messages)
    assert first.headers["x-stockyard-cache"] == "miss"
    assert up.count == 1
    second = chat(client, messages)
    assert second.headers["x-stockyard-cache"] == "hit"
    assert second.http_response.content == first.http_response.content
    assert second.parse().choices[0].message.content == "cached answers cm-main"
    assert up.count == 1, [r.body for r in up.received]  # the upstream saw the first only
    assert second.headers["content-type"].startswith("application/json")


def test_key_ignores_key_order_and_caller_identity_but_not_parameters(
    gw: Gateway, up: Upstream
) -> None:
    messages = ask()
    url = f"{gw.url}/v1/chat/completions"
    first = httpx.post(
        url,
        timeout=10,
        content=(b'{"model":"cm-main","temperature":1.0,"messages":' + _json(messages) + b"}"),
    )
    again = httpx.post(
        url,
        timeout=10,
        content=(
            b'{"messages":' + _json(messages) + b',"user":"someone else","temperature":1,'
            b'"model":"cm-main"}'
        ),
    )
    assert first.headers["x-stockyard-cache"] == "miss"
    assert again.headers["x-stockyard-cache"] == "hit"
    assert again.content == first.content
    other = httpx.post(
        url,
        timeout=10,
        json={"model": "cm-main", "temperature": 1, "messages": messages, "seed": 7},
    )
    assert other.headers["x-stockyard-cache"] == "miss"
    assert up.count == 2


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def test_changed_temperature_is_a_miss(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    messages = ask()
    assert chat(client, messages, temperature=0.5).headers["x-stockyard-cache"] == "miss"
    assert chat(client, messages, temperature=0.5).headers["x-stockyard-cache"] == "hit"
    assert chat(client, messages, temperature=0.7).headers["x-stockyard-cache"] == "miss"
    assert chat(client, messages).headers["x-stockyard-cache"] == "miss"  # no temperature
    assert [r.body.get("temperature") for r in up.received] == [0.5, 0.7, None]


def test_other_project_is_a_miss(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    messages = ask()
    assert chat(client, messages, project="alpha").headers["x-stockyard-cache"] == "miss"
    assert chat(client, messages, project="alpha").headers["x-stockyard-cache"] == "hit"
    assert chat(client, messages, project="beta").headers["x-stockyard-cache"] == "miss"
    assert chat(client, messages).headers["x-stockyard-cache"] == "miss"  # project `default`
    assert up.count == 3


def test_the_gateway_key_names_the_project(gw: Gateway, up: Upstream) -> None:
    def key(project: str) -> str:
        response = gw.api("POST", "/api/keys", json={"project": project})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    alpha, alpha2, beta = key("key-alpha"), key("key-alpha"), key("key-beta")
    messages = ask()

    def state(api_key: str, project_header: str | None = None) -> str:
        client = gw.client(api_key=api_key)
        return chat(client, messages, model="cm-keyed", project=project_header).headers[
            "x-stockyard-cache"
        ]

    assert state(alpha) == "miss"
    assert state(alpha2) == "hit"  # another key of the same project shares the entry
    assert state(beta, project_header="key-alpha") == "miss"  # the key decides, not the header
    assert state(beta) == "hit"
    assert up.count == 2
    assert stats(gw, project="key-alpha")["hits"] == 1
    assert stats(gw, project="key-beta")["hits"] == 1


def test_embeddings_are_cached(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    text = f"embed {uuid.uuid4().hex}"
    first = client.embeddings.with_raw_response.create(model="cm-main", input=text)
    second = client.embeddings.with_raw_response.create(model="cm-main", input=text)
    assert (first.headers["x-stockyard-cache"], second.headers["x-stockyard-cache"]) == (
        "miss", "hit")  # fmt: skip
    assert second.parse().data[0].embedding == [0.1, 0.2, 0.3]
    assert up.count == 1


# --- streams ----------------------------------------------------------------------------------


def test_streamed_hit_replays_sse_the_sdk_parses(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    up.default = Behaviour(reply="one two three four five")
    messages = ask()
    text, raw, chunks = streamed(client, messages)
    assert raw.headers["x-stockyard-cache"] == "miss"
    assert text == "one two three four five"
    hit_text, hit_raw, hit_chunks = streamed(client, messages)
    assert hit_raw.headers["x-stockyard-cache"] == "hit"
    assert hit_raw.headers["content-type"].startswith("text/event-stream")
    assert hit_text == text
    assert [c.model_dump() for c in hit_chunks] == [c.model_dump() for c in chunks]
    assert hit_chunks[-1].choices[0].finish_reason == "stop"
    assert up.count == 1


def test_streamed_hit_arrives_event_by_event(gw: Gateway, up: Upstream) -> None:
    up.default = Behaviour(words=6)
    body = {"model": "cm-main", "messages": ask(), "stream": True}
    url = f"{gw.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=10) as miss:
        first = miss.read()
    with httpx.stream("POST", url, json=body, timeout=10) as hit:
        pieces = list(hit.iter_raw())
        assert hit.headers["x-stockyard-cache"] == "hit"
        assert "content-length" not in hit.headers  # chunked, not one sized blob
    replay = b"".join(pieces)
    assert replay == first
    events = [e for e in replay.split(b"\n\n") if e]
    assert len(events) == 9  # role, six words, finish, [DONE]
    assert events[-1] == b"data: [DONE]"
    assert len(pieces) >= len(events), "each event is its own chunk"
    assert up.count == 1


def test_streamed_and_plain_requests_do_not_share_entries(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    messages = ask()
    streamed(client, messages)
    assert chat(client, messages).headers["x-stockyard-cache"] == "miss"
    assert streamed(client, messages)[1].headers["x-stockyard-cache"] == "hit"
    assert chat(client, messages).headers["x-stockyard-cache"] == "hit"
    assert up.count == 2


def test_stream_usage_option_is_part_of_the_key(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    messages = ask()
    plain = streamed(client, messages)[2]
    assert all(c.usage is None for c in plain)
    _, raw, chunks = streamed(client, messages, stream_options={"include_usage": True})
    assert raw.headers["x-stockyard-cache"] == "miss"
    _, raw, chunks = streamed(client, messages, stream_options={"include_usage": True})
    assert raw.headers["x-stockyard-cache"] == "hit"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18
    assert up.count == 2


def test_streams_false_passes_streams_through(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    messages = ask()
    for _ in range(2):
        _, raw, _ = streamed(client, messages, model="cm-nostream")
        assert "x-stockyard-cache" not in raw.headers
    assert chat(client, messages, model="cm-nostream").headers["x-stockyard-cache"] == "miss"
    assert chat(client, messages, model="cm-nostream").headers["x-stockyard-cache"] == "hit"
    assert up.count == 3


def test_translated_provider_answers_are_cached_and_replayed(
    gw: Gateway, claude: FakeAnthropic, client: openai.OpenAI
) -> None:
    """Anthropic's stream is translated to OpenAI chunks; what is kept and replayed is what the
    caller got, so a hit needs no translation (and no Anthropic call)."""
    claude.default = Say(reply="w0 w1 w2 w3")
    messages = ask()
    text, raw, chunks = streamed(client, messages, model="claude-test")
    assert raw.headers["x-stockyard-cache"] == "miss" and text == "w0 w1 w2 w3"
    hit_text, hit_raw, hit_chunks = streamed(client, messages, model="claude-test")
    assert hit_raw.headers["x-stockyard-cache"] == "hit" and hit_text == text
    assert [c.model_dump() for c in hit_chunks] == [c.model_dump() for c in chunks]
    first, second = (
        chat(client, messages, model="claude-test"),
        chat(client, messages, model="claude-test"),
    )
    assert (first.headers["x-stockyard-cache"], second.headers["x-stockyard-cache"]) == (
        "miss", "hit")  # fmt: skip
    assert second.http_response.content == first.http_response.content
    assert claude.count == 2
    hit = gw.trace(hit_raw.headers["x-stockyard-trace-id"])
    miss = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert hit["notes"]["cost_saved"] == miss["cost"] and Decimal(miss["cost"]) > 0


def test_stream_ended_by_a_provider_error_event_is_not_cached(
    gw: Gateway, claude: FakeAnthropic, client: openai.OpenAI
) -> None:
    messages = ask()
    claude.script = [Say(reply="w0 w1 w2 w3", error_after=2)]
    with pytest.raises(openai.APIError):
        streamed(client, messages, model="claude-test")
    _, raw, _ = streamed(client, messages, model="claude-test")
    assert raw.headers["x-stockyard-cache"] == "miss"
    assert streamed(client, messages, model="claude-test")[1].headers["x-stockyard-cache"] == "hit"
    assert claude.count == 2


# --- what is not stored -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 429, 500])
def test_errors_are_not_cached(
    gw: Gateway, up: Upstream, client: openai.OpenAI, status: int
) -> None:
    messages = ask()
    up.script = [Behaviour(status=status)]
    with pytest.raises(openai.APIStatusError) as failure:
        chat(client, messages)
    assert failure.value.status_code >= 400
    assert failure.value.response.headers["x-stockyard-cache"] == "miss"
    answer = chat(client, messages)
    assert answer.headers["x-stockyard-cache"] == "miss"  # the error was not kept
    assert answer.parse().choices[0].message.content == "cached answers cm-main"
    assert chat(client, messages).headers["x-stockyard-cache"] == "hit"
    assert up.count == 2


def test_cut_stream_is_not_cached(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    messages = ask()
    up.script = [Behaviour(words=5, fail_after_chunks=2)]
    with pytest.raises(openai.APIError):
        streamed(client, messages)
    _, raw, _ = streamed(client, messages)
    assert raw.headers["x-stockyard-cache"] == "miss"
    _, raw, _ = streamed(client, messages)
    assert raw.headers["x-stockyard-cache"] == "hit"
    assert up.count == 2


def test_abandoned_stream_is_not_cached(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=50, chunk_delay=0.05)]
    body = {"model": "cm-main", "messages": ask(), "stream": True}
    url = f"{gw.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        for _ in response.iter_raw():
            break  # the caller goes away after the first chunk
    assert up.wait_for(lambda u: u.cancelled >= 1, 5)
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        response.read()
        assert response.headers["x-stockyard-cache"] == "miss"
    assert up.count == 2


# --- ttl and eviction -------------------------------------------------------------------------


def test_expired_entry_is_a_miss(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    messages = ask()
    started = time.monotonic()
    assert chat(client, messages, model="cm-ttl").headers["x-stockyard-cache"] == "miss"
    second = chat(client, messages, model="cm-ttl").headers["x-stockyard-cache"]
    if time.monotonic() - started < 0.9:  # still fresh (unless the machine is very busy)
        assert second == "hit"
    time.sleep(1.2)  # ttl 1s
    assert chat(client, messages, model="cm-ttl").headers["x-stockyard-cache"] == "miss"
    assert up.count == 2 if second == "hit" else 3


def test_max_entries_evicts_the_least_recently_used(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    gw.api("DELETE", "/api/cache", params={"route": "small"})
    a, b, c = ask(), ask(), ask()

    def state(messages: list[dict[str, str]]) -> str:
        return chat(client, messages, model="cm-lru").headers["x-stockyard-cache"]

    assert [state(a), state(b)] == ["miss", "miss"]
    time.sleep(0.01)
    assert state(a) == "hit"  # a is now more recently used than b
    assert stats(gw, route="small")["entries"] == 2
    assert state(c) == "miss"  # the third entry: b, the least recently used, goes
    assert stats(gw, route="small")["entries"] == 2
    assert state(a) == "hit"
    assert state(c) == "hit"
    assert state(b) == "miss"
    assert up.count == 4
    assert stats(gw, route="small")["entries"] == 2


# --- the trace ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_hit_is_traced_with_cost_zero_and_the_cost_saved(
    gw: Gateway, up: Upstream, client: openai.OpenAI, stream: bool
) -> None:
    messages = ask()
    if stream:
        first, second = streamed(client, messages)[1], streamed(client, messages)[1]
    else:
        first, second = chat(client, messages), chat(client, messages)
    miss = gw.trace(first.headers["x-stockyard-trace-id"])
    hit = gw.trace(second.headers["x-stockyard-trace-id"])
    assert miss["cache"] == "miss" and hit["cache"] == "hit"
    assert Decimal(miss["cost"]) == COST
    assert Decimal(hit["cost"]) == 0 and hit["priced"] is True
    assert hit["notes"]["cost_saved"] == miss["cost"]
    assert hit["attempts"] == [] and hit["provider"] is None
    assert hit["stream"] is stream and hit["status"] == 200
    assert up.count == 1


def test_runtime_toggle_disables_and_retunes_the_cache(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    messages = ask()

    def state(question: list[dict[str, str]] = messages) -> str | None:
        return chat(client, question, model="cm-toggled").headers.get("x-stockyard-cache")

    def put(body: dict[str, Any]) -> None:
        response = gw.api("PUT", "/api/proxy/modules/cache", json={"route": "toggled", **body})
        assert response.status_code == 200, response.text

    assert [state(), state()] == ["miss", "hit"]
    try:
        put({"enabled": False})
        assert state() is None  # not consulted: straight to the provider
        assert up.count == 2
        put({"enabled": True, "params": {"ttl": "1s"}})
        time.sleep(1.1)
        assert state() == "miss"  # a lowered ttl applies to the entries already kept
        bad = gw.api("PUT", "/api/proxy/modules/cache",
                     json={"route": "toggled", "params": {"max_entries": 0}})  # fmt: skip
        assert bad.status_code == 400
    finally:
        assert gw.api("DELETE", "/api/proxy/modules/cache", params={"route": "toggled"}).is_success
    other = ask()
    assert [state(other), state(other)] == ["miss", "hit"]  # back to the .pipe default
    assert up.count == 4


# --- the API -----------------------------------------------------------------------------------


def test_stats_and_delete_tell_the_truth(gw: Gateway, up: Upstream, client: openai.OpenAI) -> None:
    project = f"stats-{uuid.uuid4().hex[:8]}"
    x, y = ask(), ask()
    first = chat(client, x, project=project)
    chat(client, x, project=project)  # hit
    chat(client, x, project=project)  # hit
    other = chat(client, y, project=project)
    data = stats(gw, project=project)
    assert data["project"] == project
    assert (data["entries"], data["hits"], data["misses"], data["stored"]) == (2, 2, 2, 2)
    assert data["hit_rate"] == 0.5
    assert Decimal(data["cost_saved"]) == 2 * COST
    assert data["bytes"] == len(first.http_response.content) + len(other.http_response.content)
    assert [p["project"] for p in data["projects"]] == [project]
    everything = stats(gw)
    assert everything["entries"] >= 2 and everything["hits"] >= 2

    cleared = gw.api("DELETE", "/api/cache", params={"project": project})
    assert cleared.status_code == 200
    assert cleared.json()["deleted"] == 2
    data = stats(gw, project=project)
    assert (data["entries"], data["bytes"]) == (0, 0)
    assert (data["hits"], data["misses"]) == (2, 2)  # counters are history; DELETE keeps them
    assert chat(client, x, project=project).headers["x-stockyard-cache"] == "miss"
    assert up.count == 3

    events = gw.api("GET", "/api/brand/ledger", params={"limit": 50}).json()["events"]
    clears = [e for e in events if e["action"] == "cache.clear"]
    assert clears and clears[0]["type"] == "admin"
    assert clears[0]["actor"] == "admin:loopback" and clears[0]["resource"] == "cache"
    assert clears[0]["detail"]["project"] == project and clears[0]["detail"]["deleted"] == 2


def test_delete_everything_and_other_projects_are_kept(gw: Gateway, client: openai.OpenAI) -> None:
    kept, gone = f"kept-{uuid.uuid4().hex[:8]}", f"gone-{uuid.uuid4().hex[:8]}"
    messages = ask()
    chat(client, messages, project=kept)
    chat(client, messages, project=gone)
    assert gw.api("DELETE", "/api/cache", params={"project": gone}).json()["deleted"] == 1
    assert chat(client, messages, project=kept).headers["x-stockyard-cache"] == "hit"
    assert chat(client, messages, project=gone).headers["x-stockyard-cache"] == "miss"
    assert gw.api("DELETE", "/api/cache").json()["deleted"] >= 2
    assert stats(gw)["entries"] == 0
    assert chat(client, messages, project=kept).headers["x-stockyard-cache"] == "miss"


def test_entries_and_counters_survive_a_restart(gateway: Gateway, upstream: Upstream) -> None:
    gateway.write("main.pipe", pipeline(upstream.url))
    gateway.start(timeout=START)
    client = gateway.client()
    messages = ask()
    chat(client, messages)
    chat(client, messages)
    before = stats(gateway)
    assert (before["entries"], before["hits"], before["misses"]) == (1, 1, 1)
    gateway.stop()
    gateway.start(timeout=START)
    after = stats(gateway)
    assert {k: after[k] for k in ("entries", "hits", "misses", "cost_saved", "bytes")} == {
        k: before[k] for k in ("entries", "hits", "misses", "cost_saved", "bytes")
    }
    assert chat(gateway.client(), messages).headers["x-stockyard-cache"] == "hit"
    assert upstream.count == 1
    assert stats(gateway)["hits"] == 2


def test_nothing_is_lost_when_the_gateway_stops_right_after(
    gateway: Gateway, upstream: Upstream
) -> None:
    gateway.write("main.pipe", pipeline(upstream.url))
    gateway.start(timeout=START)
    client = gateway.client()
    messages = ask()
    chat(client, messages)
    chat(client, messages)
    gateway.stop()  # no stats call before: the counters and the entry flush on shutdown
    gateway.start(timeout=START)
    data = stats(gateway)
    assert (data["entries"], data["hits"], data["misses"], data["stored"]) == (1, 1, 1, 1)
    assert Decimal(data["cost_saved"]) == COST


def test_concurrent_hits_are_all_served_and_counted(
    gw: Gateway, up: Upstream, client: openai.OpenAI
) -> None:
    project = f"burst-{uuid.uuid4().hex[:8]}"
    messages = ask()
    first = chat(client, messages, project=project)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"model": "cm-main", "messages": messages}
            headers = {"x-stockyard-project": project}
            return await asyncio.gather(*(
                http.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
                for _ in range(40)
            ))  # fmt: skip

    answers = asyncio.run(burst())
    assert {a.headers["x-stockyard-cache"] for a in answers} == {"hit"}
    assert {a.content for a in answers} == {first.http_response.content}
    assert up.count == 1
    data = stats(gw, project=project)
    assert (data["hits"], data["misses"], data["entries"]) == (40, 1, 1)
    assert Decimal(data["cost_saved"]) == 40 * COST


def test_cache_api_requires_the_admin_key(tmp_path: Path, upstream: Upstream) -> None:
    gateway = Gateway(tmp_path, admin_key="admin-secret-123")
    gateway.write("main.pipe", pipeline(upstream.url))
    try:
        gateway.start(timeout=START)
        assert gateway.api("GET", "/api/cache/stats").status_code == 401
        assert gateway.api("DELETE", "/api/cache").status_code == 401
        headers = {"authorization": "Bearer admin-secret-123"}
        assert gateway.api("DELETE", "/api/cache", headers=headers).status_code == 200
        events = gateway.api("GET", "/api/brand/ledger", headers=headers).json()["events"]
        assert [e["actor"] for e in events if e["action"] == "cache.clear"] == ["admin"]
    finally:
        gateway.stop()


# --- the key, unit-tested -----------------------------------------------------------------------


def _ctx(body: dict[str, Any], **extra: Any) -> Any:
    fields = {
        "path": "/v1/chat/completions",
        "project": "default",
        "route": SimpleNamespace(name="main"),
        "model": body.get("model", "m"),
        "stream": body.get("stream") is True,
    }
    return SimpleNamespace(body=body, **{**fields, **extra})


def test_cache_key_canonical_form() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1}
    key = cache_key(_ctx(base))
    assert len(key) == 64
    reordered = {"temperature": 1.0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert cache_key(_ctx(reordered)) == key
    assert cache_key(_ctx({**base, "user": "u1", "metadata": {"a": "b"}})) == key
    for change in (
        {"temperature": 0.9},
        {"top_p": 0.5},
        {"seed": 1},
        {"max_tokens": 5},
        {"tools": [{"type": "function"}]},
        {"response_format": {"type": "json_object"}},
        {"stop": ["x"]},
        {"n": 2},
        {"some_future_parameter": True},
    ):
        assert cache_key(_ctx({**base, **change})) != key, change
    assert cache_key(_ctx(base, project="other")) != key
    assert cache_key(_ctx(base, path="/v1/completions")) != key
    assert cache_key(_ctx(base, route=SimpleNamespace(name="eu"))) != key
    assert cache_key(_ctx(base, model="aliased")) != key
    streamed = {**base, "stream": True}
    assert cache_key(_ctx(streamed)) != key
    with_usage = {**streamed, "stream_options": {"include_usage": True}}
    assert cache_key(_ctx(with_usage)) != cache_key(_ctx(streamed))
    # stream_options means nothing without a stream
    assert cache_key(_ctx({**base, "stream_options": {"include_usage": True}})) == key


# --- the state and its writes, against a real store (no gateway) --------------------------------


def _entry(key: str, route: str = "r", project: str = "p", ttl: float = 60.0) -> Entry:
    now = time.time()
    return Entry(key, project, route, "m", False, 200, "application/json", b"{}", 1, 2, 5,
                 now, now + ttl)  # fmt: skip


def test_state_evicts_per_route_and_drops_expired(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "s.db", flush_interval=0.001)
        await store.open()
        try:
            shared = CacheState(store)
            for i in range(5):
                shared.add(_entry(f"a{i}"), max_entries=3)
                shared.add(_entry(f"b{i}", route="other"), max_entries=10)
                await shared.write()
                await asyncio.sleep(0.002)  # distinct last_hit times
            shared.hit("a2", "p", "r", 5, time.time())  # a2 becomes the most recently used
            shared.add(_entry("a5"), max_entries=3)
            shared.add(_entry("gone", ttl=-1), max_entries=3)  # already expired: purged
            await shared.write()
            rows = await store.query("SELECT key FROM cache WHERE route = 'r' ORDER BY key")
            assert [r["key"] for r in rows] == ["a2", "a4", "a5"]
            assert len(await store.query("SELECT key FROM cache WHERE route = 'other'")) == 5
            assert shared.recent("a5") is None  # committed: read from the database now
            stats = await store.query("SELECT * FROM cache_stats WHERE route = 'r'")
            assert (stats[0]["hits"], stats[0]["stored"], stats[0]["saved_pico"]) == (1, 7, 5)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_state_write_is_retry_safe(tmp_path: Path) -> None:
    """The writer re-runs a call after a failed attempt: the same rows are written again, not
    an empty (already taken) set."""

    async def scenario() -> None:
        store = Store(tmp_path / "s.db", flush_interval=0.001)
        await store.open()
        try:
            shared = CacheState(store)
            shared.add(_entry("k"), max_entries=10)
            shared.miss("p", "r")
            calls: list[Any] = []

            class Flaky:
                def __init__(self, real: Store) -> None:
                    self.real = real

                async def call(self, work: Any) -> Any:
                    async def twice(conn: Any) -> Any:
                        await conn.execute("SAVEPOINT s")
                        await work(conn)  # first attempt, rolled back
                        await conn.execute("ROLLBACK TO s")
                        calls.append(1)
                        return await work(conn)

                    return await self.real.call(twice)

            shared.store = Flaky(store)
            await shared.write()
            assert calls  # the rows were written twice; the first attempt rolled back
            assert len(await store.query("SELECT key FROM cache")) == 1
            row = (await store.query("SELECT misses, stored FROM cache_stats"))[0]
            assert (row["misses"], row["stored"]) == (1, 1)
        finally:
            await store.close()

    asyncio.run(scenario())
