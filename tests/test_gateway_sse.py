"""Upstream streams in every valid SSE framing, end to end: CRLF or CR line ends, no space after
``data:``, comment lines, events (and a CRLF) cut across network chunks. The gateway's one SSE
parser must read them all alike: the caller gets the same content, the gateway still asks for,
reads and hides the usage-only chunk, and the trace has the usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .fake_providers import FakeAnthropic, Say, stream_through
from .harness import Behaviour, Gateway, Upstream, provider, running_gateway

FRAMINGS: dict[str, dict[str, Any]] = {
    "lf": {},
    "crlf": {"sse_line_end": "\r\n"},
    "cr": {"sse_line_end": "\r"},
    "no space": {"sse_space": False},
    "comments": {"sse_comments": True},
    "crlf split": {"sse_line_end": "\r\n", "sse_split": True},
    "cr split, no space, comments": {
        "sse_line_end": "\r",
        "sse_split": True,
        "sse_space": False,
        "sse_comments": True,
    },
}


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("framed")
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
    pipe = (
        provider("framed", up.url)
        + provider("claude", claude.url, kind="anthropic", api_key='env("SY_TEST_SSE_KEY")')
        + """
route claude {
  path    /v1/chat/completions
  models  "claude-*"
  chain   claude
  modules [trace]
}

route chat {
  path    /v1/chat/completions
  chain   framed
  modules [trace]
}
"""
    )
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000", "SY_TEST_SSE_KEY": "sk-ant-test-sse-0000"}
    with running_gateway(tmp_path_factory.mktemp("sse"), {"main.pipe": pipe}, env=env) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream, claude: FakeAnthropic) -> None:
    up.reset()
    claude.reset()


def _content(events: list[Any]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict)
        for choice in event["choices"]
    )


@pytest.mark.parametrize("framing", FRAMINGS)
def test_openai_stream_in_any_framing(gw: Gateway, up: Upstream, framing: str) -> None:
    up.script = [Behaviour(reply="one two three", **FRAMINGS[framing])]
    events, tid, status = stream_through(gw, "gpt-4o")
    assert status == 200
    assert _content(events) == "one two three"
    assert events[-1] == "[DONE]"
    # The gateway asked for usage itself, so the usage-only chunk is read, then dropped.
    assert up.received[-1].body["stream_options"] == {"include_usage": True}
    assert all(isinstance(e, str) or e["choices"] for e in events)
    trace = gw.trace(tid)
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (11, 7)


@pytest.mark.parametrize("framing", ["crlf", "no space"])
def test_openai_usage_chunk_kept_when_the_caller_asked(
    gw: Gateway, up: Upstream, framing: str
) -> None:
    up.script = [Behaviour(reply="hi", **FRAMINGS[framing])]
    events, tid, _ = stream_through(gw, "gpt-4o", stream_options={"include_usage": True})
    assert events[-2]["choices"] == [] and events[-2]["usage"]["prompt_tokens"] == 11
    assert gw.trace(tid)["completion_tokens"] == 7


@pytest.mark.parametrize("framing", FRAMINGS)
def test_anthropic_stream_in_any_framing(gw: Gateway, claude: FakeAnthropic, framing: str) -> None:
    claude.script = [Say(reply="a b c", usage={"input_tokens": 25}, **FRAMINGS[framing])]
    events, tid, status = stream_through(gw, "claude-test")
    assert status == 200
    assert _content(events) == "a b c"
    assert events[-1] == "[DONE]"
    assert gw.trace(tid)["prompt_tokens"] == 25
