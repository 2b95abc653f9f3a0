"""The gateway end to end: real server, real upstream, the official openai SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, overhead_ms, running_gateway


def pipeline(*upstreams: Upstream, chain: str | None = None, extra: str = "") -> str:
    providers = "\n".join(
        f'provider {u.name} {{\n  kind openai\n  base_url "{u.url}"\n  api_key passthrough\n}}'
        for u in upstreams
    )
    chain = chain or " -> ".join(u.name for u in upstreams)
    return f"""{providers}
route chat {{
  path /v1/chat/completions, /v1/embeddings
  chain {chain}
  {extra}
}}
"""


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[Upstream]:
    server = Upstream("primary")
    yield server
    server.close()


@pytest.fixture(scope="module")
def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory, shared_upstream: Upstream
) -> Iterator[Gateway]:
    files = {"main.pipe": pipeline(shared_upstream)}
    with running_gateway(tmp_path_factory.mktemp("basic"), files) as gw:
        yield gw


@pytest.fixture
def upstream(shared_upstream: Upstream) -> Upstream:
    shared_upstream.reset()
    return shared_upstream


@pytest.fixture
def gateway(shared_gateway: Gateway) -> Gateway:
    return shared_gateway


def test_chat_through_openai_sdk(gateway: Gateway, upstream: Upstream) -> None:
    upstream.default = Behaviour(delay=0.25)  # provider time the overhead must leave out
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-caller-secret-123456")
    started = time.monotonic()
    response = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    wall = time.monotonic() - started
    completion = response.parse()
    assert completion.choices[0].message.content == "primary answers gpt-4o-mini"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert response.headers["x-stockyard-route"] == "chat"
    assert response.headers["x-stockyard-provider"] == "primary"
    assert len(response.headers["x-stockyard-trace-id"]) == 24
    overhead_ms(response.headers, wall, upstream=0.25)
    seen = upstream.received[-1]
    assert seen.headers["Authorization"] == "Bearer sk-caller-secret-123456"
    assert seen.body["messages"] == [{"role": "user", "content": "hi"}]


def test_stream_through_openai_sdk(gateway: Gateway, upstream: Upstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-x")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "primary answers gpt-4o"
    # the gateway asked for usage, and removed the usage chunk the caller did not ask for
    assert upstream.received[-1].body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)


def test_bad_requests_get_openai_errors(gateway: Gateway, upstream: Upstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages="nope")  # type: ignore[arg-type]
    assert "`messages` must be a list" in str(bad.value)
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="gpt-4o", prompt="x")
    assert "no route serves /v1/completions" in str(missing.value)
    # refused before any route was chosen, and still counted
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'stockyard_errors_total{route="",status="404"}' in metrics
