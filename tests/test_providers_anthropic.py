"""The Anthropic adapter end to end: the official openai SDK talks to the real gateway, which
talks to a fake Anthropic Messages API on loopback (tests/fake_providers.py) that checks what
the real API checks. Plus unit tests of the request/answer translation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from stockyard.exceptions import UpstreamFailure
from stockyard.providers.anthropic import (
    FINISH_REASONS,
    from_anthropic,
    to_anthropic,
    usage_to_openai,
)

from .fake_providers import (
    HELLO,
    FakeAnthropic,
    Say,
    chat_through,
    expected_cost,
    stream_through,
    trace_id,
)
from .harness import Gateway, Upstream, provider, running_gateway

KEY = "sk-ant-test-Qm4Vt8Xw2Lp6"
PRICE = (Decimal(3), Decimal(15), Decimal("0.30"))  # the `price "claude-test"` block below


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic("claude")
    yield server
    server.close()


@pytest.fixture(scope="module")
def backup() -> Iterator[Upstream]:
    server = Upstream("backup")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, claude: FakeAnthropic, backup: Upstream
) -> Iterator[Gateway]:
    pipe = (
        f"""
provider claude {{
  kind       anthropic
  base_url   "{claude.url}"
  api_key    env("SY_TEST_ANTHROPIC_KEY")
  max_tokens 1000
}}

provider plain_claude {{
  kind     anthropic
  base_url "{claude.url}"
  api_key  passthrough
  version  "2023-01-01"
}}
"""
        + provider("backup", backup.url)
        + """
price "claude-test" { input $3/1M  output $15/1M  cached $0.30/1M }

route plain {
  path    /v1/chat/completions
  models  "plain-*"
  chain   plain_claude(model: "claude-test")
  modules [trace]
}

route failover {
  path    /v1/chat/completions
  models  "fo-*"
  chain   claude(model: "claude-test") -> backup(model: "gpt-4o-mini")
  modules [trace]
}

route claude {
  path    /v1/chat/completions, /v1/embeddings, /v1/completions
  chain   claude
  modules [trace]
}
"""
    )
    env = {"SY_TEST_ANTHROPIC_KEY": KEY, "STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(
        tmp_path_factory.mktemp("anthropic"), {"main.pipe": pipe}, env=env
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(claude: FakeAnthropic, backup: Upstream) -> None:
    claude.reset()
    backup.reset()


def chat(gw: Gateway, **kwargs: Any) -> tuple[Any, str]:
    return chat_through(gw, "claude-test", **kwargs)


def raw_stream(gw: Gateway, **body: Any) -> tuple[list[Any], str, int]:
    return stream_through(gw, "claude-test", **body)


# --- non-streamed ----------------------------------------------------------------------------


def test_text_answer_and_the_request_anthropic_received(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(reply="Hi there, friend.")]
    answer, _ = chat(
        gw,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": [{"type": "text", "text": "Say hi."}]},
        ],
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        user="user-42",
    )
    assert answer.object == "chat.completion"
    assert answer.id == "msg_0001fake" and answer.model == "claude-test"
    (choice,) = answer.choices
    assert choice.message.role == "assistant" and choice.message.content == "Hi there, friend."
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    received = claude.last
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in received.headers  # the caller's key stays here
    assert received.body == {
        "model": "claude-test",
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Say hi."},
        ],
        "max_tokens": 1000,  # the provider's `max_tokens`: the caller set none
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }


def test_caller_max_tokens_wins_and_defaults_apply(gw: Gateway, claude: FakeAnthropic) -> None:
    chat(gw, max_tokens=77)
    assert claude.last.body["max_tokens"] == 77
    chat(gw, max_completion_tokens=55)
    assert claude.last.body["max_tokens"] == 55
    # a provider without `max_tokens` sends 4096; `version` sets the header; passthrough key
    gw.client(api_key="sk-ant-caller-key-1234").chat.completions.create(
        model="plain-x", messages=HELLO
    )
    assert claude.last.body["max_tokens"] == 4096
    assert claude.last.headers["anthropic-version"] == "2023-01-01"
    assert claude.last.headers["x-api-key"] == "sk-ant-caller-key-1234"


def test_image_and_multipart_content(gw: Gateway, claude: FakeAnthropic) -> None:
    chat(
        gw,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert claude.last.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_call_round_trip(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(tool=("get_weather", {"city": "Paris"}), preamble="Let me check.")]
    first, _ = chat(
        gw,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    sent = claude.last.body
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id == "toolu_0001fake"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    # the caller runs the tool and sends the result back
    claude.script = [Say(reply="It is sunny in Paris.")]
    second, _ = chat(
        gw,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert second.choices[0].message.content == "It is sunny in Paris."
    sent = claude.last.body
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_0001fake",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_0001fake",
                    "content": '{"sky": "sunny"}',
                }
            ],
        },
    ]


def test_tool_choice_required_and_none(gw: Gateway, claude: FakeAnthropic) -> None:
    chat(gw, tools=[WEATHER_TOOL], tool_choice="required")
    assert claude.last.body["tool_choice"] == {"type": "any"}
    chat(gw, tools=[WEATHER_TOOL], tool_choice="none")
    assert claude.last.body["tool_choice"] == {"type": "none"}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(gw: Gateway, claude: FakeAnthropic, stop: str, finish: str) -> None:
    claude.script = [Say(stop=stop), Say(stop=stop)]
    answer, _ = chat(gw)
    assert answer.choices[0].finish_reason == finish
    chunks = list(
        gw.client().chat.completions.create(model="claude-test", messages=HELLO, stream=True)
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == finish and finishes[:-1] == [None] * (len(finishes) - 1)


def test_usage_with_cache_is_recorded_and_priced(gw: Gateway, claude: FakeAnthropic) -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 24,
        "output_tokens": 50,
    }
    claude.script = [Say(usage=usage)]
    answer, tid = chat(gw)
    assert answer.usage.prompt_tokens == 1124  # fresh + cache reads + cache writes
    assert answer.usage.completion_tokens == 50 and answer.usage.total_tokens == 1174
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    trace = gw.trace(tid)
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["cached_tokens"]) == (
        1124,
        50,
        1000,
    )
    assert trace["provider"] == "claude" and trace["served_model"] == "claude-test"
    assert Decimal(trace["cost"]) == expected_cost(PRICE, 1124, 50, 1000)


# --- streamed --------------------------------------------------------------------------------


def test_stream_text(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(reply="one two three four", chunk_delay=0.01)]
    with gw.client().chat.completions.with_streaming_response.create(
        model="claude-test",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        stream=True,
    ) as response:
        tid = trace_id(response)
        chunks = list(response.parse())
    assert claude.last.body["stream"] is True and claude.last.body["system"] == "Be brief."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == "msg_0001fake" for c in chunks)
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces == ["one", " two", " three", " four"]  # one chunk per upstream delta
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    trace = gw.trace(tid)
    assert trace["stream"] is True and trace["status"] == 200
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (25, 4)
    assert Decimal(trace["cost"]) == expected_cost(PRICE, 25, 4)


def test_stream_is_translated_as_it_arrives(gw: Gateway, claude: FakeAnthropic) -> None:
    words = 6
    claude.script = [Say(reply=" ".join(f"w{i}" for i in range(words)), chunk_delay=0.3)]
    stream = gw.client().chat.completions.create(model="claude-test", messages=HELLO, stream=True)
    arrivals: list[tuple[float, int]] = []  # (client time, upstream deltas sent by then)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), claude.chunks_sent))
    assert len(arrivals) == words
    first_at, sent_when_first_arrived = arrivals[0]
    assert sent_when_first_arrived < words  # the first word came before the last was sent
    assert claude.last_chunk_at is not None and first_at < claude.last_chunk_at
    assert arrivals[-1][0] - first_at >= 0.3 * (words - 2)


def test_stream_usage_chunk_when_asked(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(reply="a b", usage={"cache_read_input_tokens": 7})]
    events, tid, status = raw_stream(gw, stream_options={"include_usage": True})
    assert status == 200 and events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 32,
        "completion_tokens": 2,
        "total_tokens": 34,
        "prompt_tokens_details": {"cached_tokens": 7},
    }
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert gw.trace(tid)["cached_tokens"] == 7


def test_stream_tool_call(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(tool=("get_weather", {"city": "Oslo", "unit": "C"}))]
    stream = gw.client().chat.completions.create(
        model="claude-test", messages=HELLO, tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            entry["name"] += (call.function.name or "") if call.function else ""
            entry["arguments"] += (call.function.arguments or "") if call.function else ""
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == "toolu_0001fake" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo", "unit": "C"}


def test_mid_stream_error_event_becomes_an_sse_error(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(reply="w0 w1 w2 w3", error_after=2, chunk_delay=0.05)]
    events, tid, status = raw_stream(gw)
    assert status == 200  # the head went out with the first chunk
    assert "[DONE]" not in events
    assert [e["choices"][0]["delta"].get("content") for e in events[:-1]] == ["", "w0", " w1"]
    error = events[-1]["error"]
    assert error["code"] == "stream_interrupted" and "Overloaded" in error["message"]
    trace = gw.trace(tid)
    assert trace["status"] == 502 and "Overloaded" in trace["error"]
    with pytest.raises(openai.APIError, match="Overloaded"):
        claude.script = [Say(reply="w0 w1 w2 w3", error_after=1, chunk_delay=0.05)]
        for _ in gw.client().chat.completions.create(
            model="claude-test", messages=HELLO, stream=True
        ):
            pass


def test_stream_cut_before_message_stop_is_an_error(gw: Gateway, claude: FakeAnthropic) -> None:
    claude.script = [Say(reply="w0 w1 w2 w3", fail_after_chunks=2, chunk_delay=0.05)]
    events, _, _ = raw_stream(gw)
    assert "[DONE]" not in events and "error" in events[-1]


# --- failures and failover -------------------------------------------------------------------


@pytest.mark.parametrize("status", [529, 500])
def test_overloaded_or_broken_anthropic_fails_over(
    gw: Gateway, claude: FakeAnthropic, backup: Upstream, status: int
) -> None:
    claude.script = [Say(status=status)]
    answer, tid = chat(gw, model="fo-anything")
    assert answer.choices[0].message.content == "backup answers gpt-4o-mini"
    trace = gw.trace(tid)
    assert trace["provider"] == "backup"
    attempts = [(a["provider"], a["status"], a["outcome"]) for a in trace["attempts"]]
    assert attempts == [("claude", status, "error"), ("backup", 200, "ok")]
    assert f"claude says {status}" in trace["attempts"][0]["error"]


def test_error_event_before_any_output_fails_over(
    gw: Gateway, claude: FakeAnthropic, backup: Upstream
) -> None:
    claude.script = [Say(error_after=0)]  # message_start, then `event: error` (overloaded)
    chunks = list(
        gw.client().chat.completions.create(model="fo-anything", messages=HELLO, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "backup answers gpt-4o-mini"
    assert claude.count == 1 and backup.count == 1


def test_bad_request_does_not_fail_over(
    gw: Gateway, claude: FakeAnthropic, backup: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        # Anthropic's temperature stops at 1: the real API (and the fake) answer 400
        gw.client().chat.completions.create(model="fo-x", messages=HELLO, temperature=1.5)
    assert "temperature" in caught.value.message
    assert backup.count == 0 and claude.count == 1


def test_endpoints_anthropic_lacks_are_a_clear_400(gw: Gateway, claude: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError, match="chat/completions only"):
        gw.client().embeddings.create(model="claude-test", input="hello")
    assert claude.count == 0


# --- unit: translation -----------------------------------------------------------------------


def test_to_anthropic_merges_tool_results_and_collects_system() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "Rule one."},
            {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "2"}]},
            {"role": "user", "content": "and?"},
        ],
        "max_tokens": 10,
    }
    out = to_anthropic(body, "m", 99)
    assert out["system"] == "Rule one.\n\nRule two."
    assert out["max_tokens"] == 10
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "a", "name": "f", "input": {}},
        {"type": "tool_use", "id": "b", "name": "g", "input": {}},
    ]
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "1"},
            {"type": "tool_result", "tool_use_id": "b", "content": "2"},
            {"type": "text", "text": "and?"},
        ],
    }
    assert "stream" not in out and "tools" not in out


def test_to_anthropic_keeps_cache_control_and_pdfs() -> None:
    marker = {"type": "ephemeral"}
    body = {
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "Big", "cache_control": marker}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    {"type": "text", "text": "Summarise", "cache_control": marker},
                ],
            },
        ]
    }
    out = to_anthropic(body, "m", 5)
    assert out["system"] == [{"type": "text", "text": "Big", "cache_control": marker}]
    assert out["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        },
        {"type": "text", "text": "Summarise", "cache_control": marker},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": HELLO, "n": 2}, "`n` must be 1"),
        ({"messages": HELLO, "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "function", "content": "x"}]}, "role `function`"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input_audio"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}],
                    }
                ]
            },
            "not valid JSON",
        ),
        ({"messages": HELLO, "tools": [{"type": "code_interpreter"}]}, "type `function`"),
    ],
)
def test_to_anthropic_refuses_what_it_cannot_translate(body: dict[str, Any], message: str) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        to_anthropic(body, "m", 5)
    assert caught.value.status == 400 and message in caught.value.message


def test_from_anthropic() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "A"},
            {"type": "text", "text": "B"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": None},
    }
    body, usage = from_anthropic(data, "asked")
    answer = json.loads(body)
    assert answer["id"] == "msg_1" and answer["model"] == "claude-x"
    assert answer["object"] == "chat.completion" and isinstance(answer["created"], int)
    (choice,) = answer["choices"]
    assert choice["message"]["content"] == "AB"
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert (
        usage
        == answer["usage"]
        == {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
    )


def test_usage_and_finish_reason_tables() -> None:
    assert usage_to_openai(None)["total_tokens"] == 0
    assert (
        usage_to_openai(
            {"input_tokens": 1, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3}
        )["prompt_tokens"]
        == 6
    )
    assert FINISH_REASONS["model_context_window_exceeded"] == "length"
    assert FINISH_REASONS["pause_turn"] == "stop"
