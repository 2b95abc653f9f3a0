"""Streaming end to end: chunks pass through as they arrive, a mid-stream upstream failure
becomes an SSE error event (never a fake ``[DONE]``), and a caller who goes away stops the
upstream request."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, provider, running_gateway

MESSAGES = [{"role": "user", "content": "stream please"}]


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("streamer")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    pipe = (
        provider("streamer", up.url)
        + """
route chat {
  path    /v1/chat/completions
  chain   streamer
  timeout 1s
  modules [trace]
}
"""
    )
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(
        tmp_path_factory.mktemp("stream"), {"main.pipe": pipe}, env=env
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def test_stream_is_not_buffered(gw: Gateway, up: Upstream) -> None:
    words = 6
    up.script = [Behaviour(words=words, chunk_delay=0.3)]
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    arrivals: list[tuple[float, int]] = []  # (client time, upstream chunks sent by then)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), up.chunks_sent))
    assert len(arrivals) == words
    first_at, sent_when_first_arrived = arrivals[0]
    # the first chunk reached the client before the upstream had produced the last one
    assert sent_when_first_arrived < words
    assert up.last_chunk_at is not None and first_at < up.last_chunk_at
    # and the chunks arrived spread out, as the upstream sent them
    assert arrivals[-1][0] - first_at >= 0.3 * (words - 2)


def test_async_stream_is_not_buffered(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=4, chunk_delay=0.3)]

    async def go() -> list[int]:
        client = gw.async_client()
        try:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )  # type: ignore[arg-type]
            return [
                up.chunks_sent async for c in stream if c.choices and c.choices[0].delta.content
            ]
        finally:
            await client.close()

    sent = asyncio.run(go())
    assert len(sent) == 4 and sent[0] < 4


def test_stream_may_outlast_the_route_timeout(gw: Gateway, up: Upstream) -> None:
    """`timeout 1s` bounds the wait for each chunk, not a long answer that keeps streaming."""
    up.script = [Behaviour(words=8, chunk_delay=0.25)]  # ~2 s in all
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert text.rstrip().endswith("data: [DONE]")
    assert "error" not in text


def test_stalled_stream_ends_with_error_event(gw: Gateway, up: Upstream) -> None:
    # the first chunk, then a silence far longer than the route's 1 s and than this client's
    # 10 s read timeout: the stream can end at all only if the gateway cut it
    up.script = [Behaviour(words=2, chunk_delay=120)]
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert '"error"' in text and "stopped sending" in text
    assert "[DONE]" not in text


def test_mid_stream_failure_raises_in_sdk(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=5, fail_after_chunks=2)]
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "w0 w1"
    assert "upstream stream failed" in caught.value.message
    assert "streamer" in caught.value.message


def test_mid_stream_failure_raw_has_error_event_and_no_done(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=5, fail_after_chunks=2)]
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200  # the head went out before the failure
        trace_id = response.headers["x-stockyard-trace-id"]
        events = [e for e in response.read().decode().split("\n\n") if e.strip()]
    assert "[DONE]" not in "".join(events)
    assert events[-1].startswith('data: {"error"')
    assert '"code":"stream_interrupted"' in events[-1].replace(" ", "")
    assert sum('"content"' in e for e in events) == 3  # role chunk + two words
    trace = gw.trace(trace_id)
    assert trace["status"] == 502
    assert "stream interrupted" in (trace["error"] or "")


def test_async_mid_stream_failure(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=5, fail_after_chunks=1)]

    async def go() -> None:
        client = gw.async_client()
        try:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )  # type: ignore[arg-type]
            with pytest.raises(openai.APIError):
                async for _ in stream:
                    pass
        finally:
            await client.close()

    asyncio.run(go())


def test_client_disconnect_cancels_upstream(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=100, chunk_delay=0.05)]  # ~5 s if read to the end
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 3:
                break
    stream.close()
    assert up.wait_for(lambda u: u.cancelled == 1, timeout=5), (
        "the upstream never saw the caller leave"
    )
    sent = up.chunks_sent
    time.sleep(0.3)
    assert up.chunks_sent == sent < 100  # it stopped producing


def test_async_client_disconnect_cancels_upstream(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(words=100, chunk_delay=0.05)]

    async def go() -> None:
        client = gw.async_client()
        try:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )  # type: ignore[arg-type]
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await stream.close()
        finally:
            await client.close()

    asyncio.run(go())
    assert up.wait_for(lambda u: u.cancelled == 1, timeout=5)
    assert up.chunks_sent < 100


def test_disconnect_leaves_the_gateway_healthy(gw: Gateway, up: Upstream) -> None:
    """An abrupt reset from the caller mid-stream does not disturb the next requests."""
    up.script = [Behaviour(words=100, chunk_delay=0.05)]
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}'
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert b"200" in sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert up.wait_for(lambda u: u.cancelled == 1, timeout=5)
    chunks = list(
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )  # type: ignore[arg-type]
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_disconnect_while_waiting_for_upstream_cancels_it(
    gw: Gateway, up: Upstream, stream: bool
) -> None:
    """The caller gives up before the first byte (slow upstream): the upstream request stops."""
    up.script = [Behaviour(delay=0.9)]  # under the route's 1 s timeout
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": stream}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(10, read=0.2))
    assert up.wait_for(lambda u: u.received[0].cancelled, timeout=2), "the upstream request ran on"
