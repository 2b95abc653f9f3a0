"""``max_tokens`` end to end through the real server and the official SDK: clamp, reject (400
with the SDK's BadRequestError), set when missing (in the field the caller's model takes),
streams and the completions endpoint; the upstream sees the rewritten body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .harness import Gateway, Upstream, provider, running_gateway

PIPE = """
route clamp {
  path    /v1/chat/completions, /v1/completions, /v1/embeddings
  models  "clamp-*", "o3*"
  chain   up
  modules [trace, audit, max_tokens(limit: 100)]
}

route strict {
  path    /v1/chat/completions
  models  "strict-*"
  chain   up
  modules [trace, audit, max_tokens(limit: 100, action: reject)]
}
"""

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("bounded")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    files = {"main.pipe": provider("up", up.url) + PIPE}
    with running_gateway(tmp_path_factory.mktemp("maxtok"), files, start_timeout=60) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def sent(up: Upstream) -> dict[str, Any]:
    assert up.count == 1
    return up.received[0].body


def test_pipeline_checks_clean(gw: Gateway) -> None:
    result = gw.check()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_clamps_max_tokens(gw: Gateway, up: Upstream, stream: bool) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="clamp-a", messages=HI, max_tokens=5000, stream=stream
    )
    result = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in result if c.choices)
    else:
        text = result.choices[0].message.content
    assert text == "bounded answers clamp-a"
    body = sent(up)
    assert body["max_tokens"] == 100 and "max_completion_tokens" not in body
    assert body["messages"] == HI and body.get("stream", False) is stream
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert trace["notes"]["max_tokens"] == {"clamped_from": 5000, "to": 100, "field": "max_tokens"}


def test_clamps_max_completion_tokens_in_its_own_field(gw: Gateway, up: Upstream) -> None:
    gw.client().chat.completions.create(model="clamp-a", messages=HI, max_completion_tokens=900)
    body = sent(up)
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body


def test_under_the_limit_is_forwarded_byte_for_byte(gw: Gateway, up: Upstream) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="clamp-a", messages=HI, max_tokens=60
    )
    assert sent(up)["max_tokens"] == 60
    assert "max_tokens" not in gw.trace(raw.headers["x-stockyard-trace-id"])["notes"]


@pytest.mark.parametrize(
    ("model", "field"), [("clamp-a", "max_tokens"), ("o3-mini", "max_completion_tokens")]
)
def test_sets_the_limit_when_missing(gw: Gateway, up: Upstream, model: str, field: str) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(model=model, messages=HI)
    body = sent(up)
    assert body[field] == 100
    other = "max_tokens" if field == "max_completion_tokens" else "max_completion_tokens"
    assert other not in body
    notes = gw.trace(raw.headers["x-stockyard-trace-id"])["notes"]
    assert notes["max_tokens"] == {"set": 100, "field": field}


def test_text_completions_are_clamped(gw: Gateway, up: Upstream) -> None:
    gw.client().completions.create(model="clamp-a", prompt="hello", max_tokens=777)
    body = sent(up)
    assert body["max_tokens"] == 100 and body["prompt"] == "hello"


def test_embeddings_are_left_alone(gw: Gateway, up: Upstream) -> None:
    gw.client().embeddings.create(model="clamp-e", input="hello")
    body = sent(up)
    assert "max_tokens" not in body and "max_completion_tokens" not in body


@pytest.mark.parametrize("stream", [False, True])
def test_reject_above_the_limit(gw: Gateway, up: Upstream, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model="strict-a", messages=HI, max_tokens=101, stream=stream
        )
    error = caught.value
    assert error.status_code == 400
    assert error.code == "max_tokens_exceeded"
    assert error.param == "max_tokens"
    assert "101" in error.message and "100" in error.message
    assert up.count == 0
    trace = gw.trace(error.response.headers["x-stockyard-trace-id"])
    assert trace["status"] == 400 and trace["notes"]["blocked_by"] == "max_tokens"


def test_reject_names_max_completion_tokens(gw: Gateway, up: Upstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model="strict-a", messages=HI, max_completion_tokens=5000
        )
    assert caught.value.param == "max_completion_tokens"
    assert up.count == 0


def test_reject_route_passes_at_the_limit_and_sets_it_when_missing(
    gw: Gateway, up: Upstream
) -> None:
    client = gw.client()
    client.chat.completions.create(model="strict-a", messages=HI, max_tokens=100)
    client.chat.completions.create(model="strict-a", messages=HI)
    assert [r.body.get("max_tokens") for r in up.received] == [100, 100]


def test_invalid_value_is_left_to_validation(gw: Gateway, up: Upstream) -> None:
    response = gw.api(
        "POST",
        "/v1/chat/completions",
        json={"model": "clamp-a", "messages": HI, "max_tokens": "lots"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"
    assert up.count == 0
