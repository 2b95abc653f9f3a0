"""The Gemini adapter end to end: the official openai SDK talks to the real gateway, which
talks to a fake Gemini API on loopback (tests/fake_providers.py) that checks what the real API
checks (roles, parts, function responses, Gemini 3 thought signatures). Plus unit tests of
the request/answer translation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from stockyard.exceptions import UpstreamFailure
from stockyard.providers.gemini import (
    NO_SIGNATURE,
    call_id,
    finish_reason,
    from_gemini,
    signature_of,
    to_gemini,
    usage_to_openai,
)

from .fake_providers import (
    HELLO,
    SIGNATURE,
    FakeGemini,
    Say,
    chat_through,
    expected_cost,
    stream_through,
    trace_id,
)
from .harness import Gateway, Upstream, provider, running_gateway

KEY = "gemini-test-key-Zr8Pq2Lm"
PRICE = (Decimal("0.30"), Decimal("2.50"), Decimal("0.075"))  # `price "gemini-test"` below


@pytest.fixture(scope="module")
def gem() -> Iterator[FakeGemini]:
    server = FakeGemini("gemini")
    yield server
    server.close()


@pytest.fixture(scope="module")
def backup() -> Iterator[Upstream]:
    server = Upstream("backup")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, gem: FakeGemini, backup: Upstream
) -> Iterator[Gateway]:
    pipe = (
        f"""
provider gemini {{
  kind     gemini
  base_url "{gem.url}"
  api_key  env("SY_TEST_GEMINI_KEY")
}}
"""
        + provider("backup", backup.url)
        + """
price "gemini-test" { input $0.30/1M  output $2.50/1M  cached $0.075/1M }
price "gemini-3-test" { input $2/1M  output $12/1M }

route failover {
  path    /v1/chat/completions
  models  "fo-*"
  chain   gemini(model: "gemini-test") -> backup(model: "gpt-4o-mini")
  modules [trace]
}

route gemini {
  path    /v1/chat/completions, /v1/embeddings
  chain   gemini
  modules [trace]
}
"""
    )
    env = {"SY_TEST_GEMINI_KEY": KEY, "STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(tmp_path_factory.mktemp("gemini"), {"main.pipe": pipe}, env=env) as g:
        yield g


@pytest.fixture(autouse=True)
def _fresh(gem: FakeGemini, backup: Upstream) -> None:
    gem.reset()
    backup.reset()


def chat(gw: Gateway, **kwargs: Any) -> tuple[Any, str]:
    return chat_through(gw, "gemini-test", **kwargs)


def raw_stream(gw: Gateway, **body: Any) -> tuple[list[Any], str, int]:
    return stream_through(gw, "gemini-test", **body)


# --- non-streamed ----------------------------------------------------------------------------


def test_text_answer_and_the_request_gemini_received(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(reply="Hi there.")]
    answer, _ = chat(
        gw,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Say hi."}]},
        ],
        max_tokens=64,
        temperature=0.2,
        top_p=0.8,
        stop="END",
        seed=7,
    )
    assert answer.object == "chat.completion" and answer.id == "resp-1"
    assert answer.model == "gemini-test"
    (choice,) = answer.choices
    assert choice.message.content == "Hi there." and choice.finish_reason == "stop"
    received = gem.last
    assert received.path == "/v1/models/gemini-test:generateContent"
    assert received.headers["x-goog-api-key"] == KEY
    assert "Authorization" not in received.headers
    assert received.body == {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hello"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Say hi."}]},
        ],
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.2,
            "topP": 0.8,
            "seed": 7,
            "stopSequences": ["END"],
        },
    }


def test_images_and_json_mode(gw: Gateway, gem: FakeGemini) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    chat(
        gw,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Count the cats"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}},
                ],
            }
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    body = gem.last.body
    assert body["contents"][0]["parts"] == [
        {"text": "Count the cats"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/c.png"}},
    ]
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize("model", ["gemini-test", "gemini-3-test"])
def test_tool_call_round_trip(gw: Gateway, gem: FakeGemini, model: str) -> None:
    """Gemini 3 signs its function calls and refuses a history without the signature: the
    signature rides in the tool call id and comes back with the call."""
    gem.script = [Say(tool=("get_weather", {"city": "Paris"}))]
    first, _ = chat(
        gw,
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    sent = gem.last.body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert all(c.isalnum() or c in "_-" for c in call.id)  # safe for any other provider too

    gem.script = [Say(reply="Sunny.")]
    second, _ = chat(
        gw,
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
            {"role": "tool", "tool_call_id": call.id, "content": "plain text result"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert second.choices[0].message.content == "Sunny."
    sent = gem.last.body
    expected_call: dict[str, Any] = {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": SIGNATURE if model == "gemini-3-test" else NO_SIGNATURE,
    }
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [expected_call]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": "plain text result"},
                    }
                },
            ],
        },
    ]
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


def test_history_from_another_provider_passes_gemini_3(gw: Gateway, gem: FakeGemini) -> None:
    """Tool calls made by another model carry no signature: Google's documented stand-in
    keeps Gemini 3 from refusing the conversation."""
    chat(
        gw,
        model="gemini-3-test",
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc", "content": "warm"},
        ],
        tools=[WEATHER_TOOL],
    )
    parts = gem.last.body["contents"][1]["parts"]
    assert parts[0] == {"text": "Checking."}
    assert parts[1]["thoughtSignature"] == NO_SIGNATURE


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")],
)
def test_finish_reasons(gw: Gateway, gem: FakeGemini, reason: str, finish: str) -> None:
    gem.script = [Say(stop=reason), Say(stop=reason)]
    answer, _ = chat(gw)
    assert answer.choices[0].finish_reason == finish
    chunks = list(
        gw.client().chat.completions.create(model="gemini-test", messages=HELLO, stream=True)
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == finish and set(finishes[:-1]) == {None}


def test_usage_with_cache_and_thoughts_is_recorded_and_priced(gw: Gateway, gem: FakeGemini) -> None:
    usage = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 60,
        "totalTokenCount": 1300,
    }
    gem.script = [Say(reply="Done.", usage=usage)]
    answer, tid = chat(gw)
    assert answer.choices[0].message.content == "Done."  # the thought summary is left out
    assert answer.usage.prompt_tokens == 1200
    assert answer.usage.completion_tokens == 100  # candidates + thoughts, as OpenAI counts
    assert answer.usage.total_tokens == 1300
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    assert answer.usage.completion_tokens_details.reasoning_tokens == 60
    trace = gw.trace(tid)
    assert (trace["prompt_tokens"], trace["completion_tokens"], trace["cached_tokens"]) == (
        1200,
        100,
        1000,
    )
    assert Decimal(trace["cost"]) == expected_cost(PRICE, 1200, 100, 1000)


# --- streamed --------------------------------------------------------------------------------


def test_stream_text(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(reply="one two three", chunk_delay=0.01)]
    with gw.client().chat.completions.with_streaming_response.create(
        model="gemini-test", messages=HELLO, stream=True
    ) as response:
        tid = trace_id(response)
        chunks = list(response.parse())
    assert gem.last.path == "/v1/models/gemini-test:streamGenerateContent"
    assert gem.queries[-1] == {"alt": "sse"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.id == "resp-1" and c.object == "chat.completion.chunk" for c in chunks)
    text = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert text == ["one", " two", " three"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    trace = gw.trace(tid)
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (21, 3)
    assert trace["stream"] is True and Decimal(trace["cost"]) == expected_cost(PRICE, 21, 3)


def test_stream_is_translated_as_it_arrives(gw: Gateway, gem: FakeGemini) -> None:
    words = 5
    gem.script = [Say(reply=" ".join(f"w{i}" for i in range(words)), chunk_delay=0.3)]
    stream = gw.client().chat.completions.create(model="gemini-test", messages=HELLO, stream=True)
    arrivals: list[tuple[float, int]] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), gem.chunks_sent))
    assert len(arrivals) == words
    assert arrivals[0][1] < words
    assert gem.last_chunk_at is not None and arrivals[0][0] < gem.last_chunk_at
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3 * (words - 2)


def test_stream_usage_chunk_when_asked(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(reply="a b", usage={"cachedContentTokenCount": 5})]
    events, tid, status = raw_stream(gw, stream_options={"include_usage": True})
    assert status == 200 and events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"] == {
        "prompt_tokens": 21,
        "completion_tokens": 2,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert gw.trace(tid)["cached_tokens"] == 5


def test_stream_tool_call(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(tool=("get_weather", {"city": "Oslo"}), preamble="Checking")]
    events, _, _ = raw_stream(gw, tools=[WEATHER_TOOL])
    deltas = [e["choices"][0] for e in events if isinstance(e, dict) and e["choices"]]
    assert deltas[1]["delta"] == {"content": "Checking"}
    (call,) = deltas[2]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["type"] == "function" and call["id"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert deltas[-1]["finish_reason"] == "tool_calls"


def test_mid_stream_error_becomes_an_sse_error(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(reply="w0 w1 w2 w3", error_after=2, chunk_delay=0.05)]
    events, tid, status = raw_stream(gw)
    assert status == 200 and "[DONE]" not in events
    assert [e["choices"][0]["delta"].get("content") for e in events[:-1]] == ["", "w0", " w1"]
    assert events[-1]["error"]["code"] == "stream_interrupted"
    assert "overloaded" in events[-1]["error"]["message"]
    trace = gw.trace(tid)
    assert trace["status"] == 502 and "overloaded" in trace["error"]


def test_stream_cut_short_is_an_error(gw: Gateway, gem: FakeGemini) -> None:
    gem.script = [Say(reply="w0 w1 w2 w3", fail_after_chunks=2, chunk_delay=0.05)]
    events, _, _ = raw_stream(gw)
    assert "[DONE]" not in events and "error" in events[-1]


# --- failures and failover -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_fail_over(
    gw: Gateway, gem: FakeGemini, backup: Upstream, status: int
) -> None:
    gem.script = [Say(status=status)]
    answer, tid = chat(gw, model="fo-1")
    assert answer.choices[0].message.content == "backup answers gpt-4o-mini"
    attempts = [(a["provider"], a["status"], a["outcome"]) for a in gw.trace(tid)["attempts"]]
    assert attempts == [("gemini", status, "error"), ("backup", 200, "ok")]


def test_error_event_before_any_output_fails_over(
    gw: Gateway, gem: FakeGemini, backup: Upstream
) -> None:
    gem.script = [Say(reply="w0 w1", error_after=0)]  # 200, then `data: {"error": …}`
    chunks = list(gw.client().chat.completions.create(model="fo-1", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "backup answers gpt-4o-mini"
    assert gem.count == 1 and backup.count == 1


def test_bad_request_does_not_fail_over(gw: Gateway, gem: FakeGemini, backup: Upstream) -> None:
    gem.script = [Say(status=400)]
    with pytest.raises(openai.BadRequestError, match="gemini says 400"):
        chat(gw, model="fo-1")
    assert backup.count == 0


# --- embeddings ------------------------------------------------------------------------------


def test_embeddings(gw: Gateway, gem: FakeGemini) -> None:
    client = gw.client()
    result = client.embeddings.create(model="text-embedding-004", input=["ab", "abcd"])
    assert gem.last.path == "/v1/models/text-embedding-004:batchEmbedContents"
    assert gem.last.body == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "ab"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "abcd"}]}},
        ]
    }
    # the SDK asked for base64 (its default) and decoded it
    # (as float32 on the wire, like OpenAI's own base64 embeddings)
    assert result.data[0].embedding == pytest.approx([2.0, 1.0, 0.667, 0.5], rel=1e-6)
    assert result.data[1].embedding == pytest.approx([4.0, 2.0, 1.333, 1.0], rel=1e-6)
    assert [d.index for d in result.data] == [0, 1]
    floats = client.embeddings.create(
        model="text-embedding-004", input="abc", encoding_format="float", dimensions=2
    )
    assert gem.last.body["requests"][0]["outputDimensionality"] == 2
    assert floats.data[0].embedding == [3.0, 1.5]


# --- unit: translation -----------------------------------------------------------------------


def test_to_gemini_merges_roles_and_maps_tool_choice() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "A"},
            {"role": "developer", "content": "B"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "n": 2,
        "max_completion_tokens": 9,
        "presence_penalty": 0.5,
    }
    out = to_gemini(body)
    assert out["systemInstruction"] == {"parts": [{"text": "A\n\nB"}]}
    assert out["contents"] == [{"role": "user", "parts": [{"text": "one"}, {"text": "two"}]}]
    assert out["tools"] == [{"functionDeclarations": [{"name": "f"}]}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert out["generationConfig"] == {
        "maxOutputTokens": 9,
        "presencePenalty": 0.5,
        "candidateCount": 2,
    }
    body["tool_choice"] = "none"
    assert to_gemini(body)["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


def test_to_gemini_refuses_an_orphan_tool_result() -> None:
    with pytest.raises(UpstreamFailure, match="matches no earlier tool call") as caught:
        to_gemini({"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]})
    assert caught.value.status == 400


def test_signature_travels_in_the_call_id() -> None:
    ident = call_id({"name": "f", "args": {}}, SIGNATURE)
    assert ident.startswith("call_") and "+" not in ident and "/" not in ident
    assert signature_of(ident) == SIGNATURE
    assert call_id({"id": "g1", "name": "f"}, None) == "g1"
    assert signature_of("call_plain") is None


def test_from_gemini_candidates_and_blocked_prompt() -> None:
    data = {
        "candidates": [
            {
                "index": 0,
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking…", "thought": True},
                        {"text": "Hel"},
                        {"text": "lo"},
                    ],
                },
                "finishReason": "STOP",
            },
            {"index": 1, "finishReason": "RECITATION"},
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "r1",
    }
    body, usage = from_gemini(data, "asked")
    answer = json.loads(body)
    assert answer["id"] == "r1" and answer["model"] == "gemini-2.5-flash-001"
    assert [c["message"]["content"] for c in answer["choices"]] == ["Hello", ""]
    assert [c["finish_reason"] for c in answer["choices"]] == ["stop", "content_filter"]
    assert usage["total_tokens"] == 6
    blocked, _ = from_gemini({"promptFeedback": {"blockReason": "SAFETY"}}, "m")
    (choice,) = json.loads(blocked)["choices"]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == ""


def test_usage_and_finish_tables() -> None:
    assert (
        usage_to_openai({"promptTokenCount": 3, "toolUsePromptTokenCount": 2})["prompt_tokens"] == 5
    )
    assert finish_reason("STOP", True) == "tool_calls"
    assert finish_reason("MAX_TOKENS", True) == "length"
    assert finish_reason("OTHER", False) == "stop"
    assert finish_reason(None, False) == "stop"
