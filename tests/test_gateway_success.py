"""Happy paths end to end: the official openai SDK (sync and async, streaming and not) through
the real gateway to a real loopback upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, overhead_ms, provider, running_gateway

KEY = "sk-caller-success-0123456789"


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("primary")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    pipe = (
        provider("primary", up.url)
        + """
route chat {
  path    /v1/chat/completions, /v1/completions
  models  "gpt-4o*", "rewritten"
  chain   primary
  timeout 10s first_token 5s
}

route embed {
  path  /v1/embeddings
  models "text-embedding-*"
  chain primary(model: "embed-upstream")
}
"""
    )
    with running_gateway(tmp_path_factory.mktemp("success"), {"main.pipe": pipe}) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def sync_client(gw: Gateway, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=20, **kwargs)  # type: ignore[arg-type]


def async_client(gw: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=20)


MESSAGES = [{"role": "user", "content": "hello there"}]


def test_sync_chat(gw: Gateway, up: Upstream) -> None:
    up.default = Behaviour(delay=0.25)  # provider time the overhead must leave out
    started = time.monotonic()
    raw = sync_client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.5,
        max_tokens=20,  # type: ignore[arg-type]
    )
    wall = time.monotonic() - started
    completion = raw.parse()
    assert completion.choices[0].message.content == "primary answers gpt-4o-mini"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert raw.headers["x-stockyard-route"] == "chat"
    assert raw.headers["x-stockyard-provider"] == "primary"
    assert len(raw.headers["x-stockyard-trace-id"]) == 24
    overhead_ms(raw.headers, wall, upstream=0.25)
    assert up.count == 1
    seen = up.received[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "temperature": 0.5,
        "max_tokens": 20,
    }


def test_body_forwarded_unchanged(gw: Gateway, up: Upstream) -> None:
    """Fields the gateway does not know about reach the upstream untouched."""
    raw = b'{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"x_vendor":{"a":[1,2.5,null]}}'
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    response = httpx.post(f"{gw.url}/v1/chat/completions", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert up.received[0].body["x_vendor"] == {"a": [1, 2.5, None]}
    # not even re-serialised: the upstream gets the caller's bytes
    odd = b'{ "messages" : [{"content":"x","role":"user"}],\n  "model":"gpt-4o", "top_p": 1.0e0 }'
    response = httpx.post(f"{gw.url}/v1/chat/completions", content=odd, headers=headers)
    assert response.status_code == 200, response.text
    assert up.received[1].raw == odd


def test_sync_stream(gw: Gateway, up: Upstream) -> None:
    with sync_client(gw).chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-stockyard-provider"] == "primary"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "primary answers gpt-4o"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # the gateway asked for usage and stripped the usage chunk the caller did not ask for
    assert up.received[0].body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)


def test_sync_stream_with_usage_requested(gw: Gateway, up: Upstream) -> None:
    chunks = list(
        sync_client(gw).chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18


def test_raw_stream_ends_with_done(gw: Gateway, up: Upstream) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert text.rstrip().endswith("data: [DONE]")
    assert text.count("data: [DONE]") == 1


def test_legacy_completions(gw: Gateway, up: Upstream) -> None:
    sync_client(gw).completions.with_raw_response.create(model="gpt-4o", prompt="say hi")
    assert up.received[0].path == "/v1/completions"
    assert up.received[0].body == {"model": "gpt-4o", "prompt": "say hi"}


def test_async_chat_and_stream(gw: Gateway, up: Upstream) -> None:
    asyncio.run(_async_chat_and_stream(gw))


async def _async_chat_and_stream(gw: Gateway) -> None:
    client = async_client(gw)
    try:
        completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == "primary answers gpt-4o"
        stream = await client.chat.completions.create(
            model="gpt-4o-2024",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(parts) == "primary answers gpt-4o-2024"
        # concurrent requests share the gateway without mixing answers
        many = await asyncio.gather(
            *(
                client.chat.completions.create(model=f"gpt-4o-{i}", messages=MESSAGES)  # type: ignore[arg-type]
                for i in range(8)
            )
        )
        assert [c.choices[0].message.content for c in many] == [
            f"primary answers gpt-4o-{i}" for i in range(8)
        ]
    finally:
        await client.close()


def test_embeddings_sync_and_async(gw: Gateway, up: Upstream) -> None:
    raw = sync_client(gw).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    result = raw.parse()
    assert result.data[0].embedding == [0.1, 0.2, 0.3]
    assert raw.headers["x-stockyard-route"] == "embed"
    assert up.received[0].path == "/v1/embeddings"
    assert up.received[0].body["model"] == "embed-upstream"  # per-hop model rewrite
    assert up.received[0].body["input"] == "hello"

    async def go() -> list[float]:
        client = async_client(gw)
        try:
            answer = await client.embeddings.create(
                model="text-embedding-3-large", input=["a", "b"], encoding_format="float"
            )
            return answer.data[0].embedding
        finally:
            await client.close()

    assert asyncio.run(go()) == [0.1, 0.2, 0.3]
    assert up.received[1].body["input"] == ["a", "b"]


def test_models_lists_route_models(gw: Gateway) -> None:
    models = sync_client(gw).models.list()
    ids = {m.id for m in models.data}
    assert {"gpt-4o*", "rewritten", "text-embedding-*", "embed-upstream"} <= ids
    owners = {m.id: m.owned_by for m in models.data}
    assert owners["rewritten"] == "stockyard:chat"
    assert owners["embed-upstream"] == "stockyard:embed"


def test_health(gw: Gateway) -> None:
    response = gw.api("GET", "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["routes"] == 2


def test_startup_banner(gw: Gateway) -> None:
    log = gw.log()
    assert f"listening on http://127.0.0.1:{gw.port}" in log
    assert "main.pipe" in log
    assert "stockyard.db" in log


def test_unknown_model_is_404(gw: Gateway) -> None:
    response = httpx.post(
        f"{gw.url}/v1/chat/completions", json={"model": "claude-3", "messages": []}
    )
    assert response.status_code == 404
    assert "claude-3" in response.json()["error"]["message"]
