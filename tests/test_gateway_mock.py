"""The built-in `mock` provider through the real gateway: echo answers with realistic usage,
streams, embeddings, latency (under the route's timeouts) and a deterministic fail rate."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .harness import Gateway, running_gateway

PIPE = """
provider echo { kind mock }
provider slow { kind mock; latency 300ms; chunk_delay 100ms }
provider flaky { kind mock; fail_rate 0.25 }
provider flaky2 { kind mock; fail_rate 0.5 }
provider fixed { kind mock; reply "Hello from the mock." }
provider late { kind mock; latency 120s }  # longer than any client here waits

route echo {
  path   /v1/chat/completions, /v1/completions, /v1/embeddings
  models "mock-*"
  chain  echo
}
route slow { path /v1/chat/completions; models "slow-*"; chain slow }
route flaky { path /v1/chat/completions; models "flaky-*"; chain flaky }
route flaky_failover { path /v1/chat/completions; models "ffo-*"; chain flaky2 -> echo }
route fixed { path /v1/chat/completions; models "fixed-*"; chain fixed }
route late {
  path    /v1/chat/completions
  models  "late-*"
  chain   late -> echo(model: "mock-fallback")
  timeout 300ms
}
route late_alone {
  path    /v1/chat/completions
  models  "alone-*"
  chain   late
  timeout 300ms
}
"""

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello, world!"},
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(tmp_path_factory.mktemp("mock"), {"main.pipe": PIPE}, env=env) as gateway:
        yield gateway


def test_mock_chat(gw: Gateway) -> None:
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(model="mock-1", messages=MESSAGES)  # type: ignore[arg-type]
    completion = raw.parse()
    assert raw.headers["x-stockyard-provider"] == "echo"
    assert completion.model == "mock-1"
    assert completion.choices[0].message.content == "Mock reply to: Hello, world!"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    # "Be brief. Hello, world!": Be brief . Hello , world ! -> 7; "Mock reply to: Hello, world!" -> 8
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 8, 15)
    again = client.chat.completions.create(model="mock-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert again.id == completion.id  # deterministic


def test_mock_max_tokens_and_fixed_reply(gw: Gateway) -> None:
    client = gw.client()
    short = client.chat.completions.create(model="mock-1", messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    assert short.choices[0].message.content == "Mock reply"
    fixed = client.chat.completions.create(model="fixed-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert fixed.choices[0].message.content == "Hello from the mock."


def test_mock_stream(gw: Gateway) -> None:
    client = gw.client()
    chunks = list(client.chat.completions.create(model="mock-1", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: Hello, world!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    with_usage = list(
        client.chat.completions.create(
            model="mock-1",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.total_tokens == 15
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        timeout=10,
        json={"model": "mock-1", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.read().decode().rstrip().endswith("data: [DONE]")


def test_mock_async_and_completions(gw: Gateway) -> None:
    async def go() -> tuple[str, str]:
        client = gw.async_client()
        try:
            chat = await client.chat.completions.create(model="mock-a", messages=MESSAGES)  # type: ignore[arg-type]
            legacy = await client.completions.create(model="mock-a", prompt="say cheese")
            return chat.choices[0].message.content or "", legacy.choices[0].text
        finally:
            await client.close()

    assert asyncio.run(go()) == ("Mock reply to: Hello, world!", "Mock reply to: say cheese")


def test_mock_embeddings(gw: Gateway) -> None:
    client = gw.client()
    result = client.embeddings.create(
        model="mock-embed", input=["alpha", "beta", "alpha"], encoding_format="float"
    )
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 16 and all(-1 <= x <= 1 for x in v) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert result.usage.prompt_tokens == 3
    again = client.embeddings.create(model="mock-embed", input="alpha", encoding_format="float")
    assert again.data[0].embedding == vectors[0]


def test_mock_latency_and_chunk_delay(gw: Gateway) -> None:
    client = gw.client()
    started = time.monotonic()
    client.chat.completions.create(model="slow-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    arrivals = []
    for _chunk in client.chat.completions.create(model="slow-1", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
        arrivals.append(time.monotonic() - started)
    assert arrivals[0] >= 0.3
    assert arrivals[-1] - arrivals[0] >= 0.1 * 4  # five words, 100 ms apart, streamed as produced
    assert arrivals[1] < arrivals[-1] - 0.2  # not buffered


def test_mock_fail_rate_is_deterministic(gw: Gateway) -> None:
    statuses = []
    for i in range(8):
        response = httpx.post(
            f"{gw.url}/v1/chat/completions",
            timeout=10,
            json={"model": f"flaky-{i}", "messages": MESSAGES},
        )
        statuses.append(response.status_code)
    # exactly a quarter, evenly spread: every fourth request fails
    assert statuses == [200, 200, 200, 502, 200, 200, 200, 502]
    error = response.json()["error"]
    assert "mock failure" in error["message"] and "500" in error["message"]


def test_mock_fail_rate_fails_over(gw: Gateway) -> None:
    providers = []
    for i in range(6):
        raw = gw.client().chat.completions.with_raw_response.create(
            model=f"ffo-{i}", messages=MESSAGES
        )  # type: ignore[arg-type]
        providers.append(raw.headers["x-stockyard-provider"])
    assert providers == ["flaky2", "echo"] * 3
    assert providers.count("echo") == math.floor(6 * 0.5)


def test_mock_latency_obeys_route_timeout(gw: Gateway) -> None:
    # the client waits 20 s for a mock that takes 120 s: an answer at all means it was cut
    raw = gw.client().chat.completions.with_raw_response.create(model="late-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-stockyard-provider"] == "echo"
    assert raw.parse().model == "mock-fallback"
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="alone-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 504
