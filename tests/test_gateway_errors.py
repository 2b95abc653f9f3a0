"""Every failure a client can see: OpenAI error shape, the right status, a message that says
what is wrong (which field, which model, which upstream status) and no secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .harness import Behaviour, Gateway, Upstream, closed_url, provider, running_gateway

KEY = "sk-caller-errors-ABCDEF123456"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("upstream")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    pipe = (
        provider("upstream", up.url)
        + provider("dead", closed_url())
        + """
route chat {
  path    /v1/chat/completions, /v1/completions, /v1/embeddings
  models  "gpt-*", "text-embedding-*"
  chain   upstream
  timeout 500ms
}

route down {
  path   /v1/chat/completions
  models "down-*"
  chain  dead
}
"""
    )
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    directory = tmp_path_factory.mktemp("errors")
    with running_gateway(
        directory, {"main.pipe": pipe}, "--max-body", str(MAX_BODY), env=env
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def post(
    gw: Gateway, content: Any, path: str = "/v1/chat/completions", **kw: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    if not isinstance(content, dict):
        return httpx.post(f"{gw.url}{path}", content=content, headers=headers, timeout=10, **kw)
    return httpx.post(f"{gw.url}{path}", json=content, headers=headers, timeout=10, **kw)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-stockyard-trace-id")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]
    assert KEY not in response.text
    return error


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
    ],
)
def test_400_unreadable_bodies(gw: Gateway, raw: bytes, words: str) -> None:
    error = error_of(post(gw, raw), 400)
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": []}, "model", "`model` is required"),
        ({"model": 42, "messages": []}, "model", "`model`"),
        ({"model": "", "messages": []}, "model", "`model`"),
        ({"model": "gpt-4o"}, "messages", "`messages` is required"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages", "`messages` must be a list"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "messages", "`messages`"),
        (
            {"model": "gpt-4o", "messages": [], "stream": "yes"},
            "stream",
            "`stream` must be true or false",
        ),
        (
            {"model": "gpt-4o", "messages": [], "max_tokens": "10"},
            "max_tokens",
            "`max_tokens` must be an integer",
        ),
        ({"model": "gpt-4o", "messages": [], "max_tokens": True}, "max_tokens", "`max_tokens`"),
        (
            {"model": "gpt-4o", "messages": [], "temperature": "hot"},
            "temperature",
            "`temperature` must be a number",
        ),
        (
            {"model": "gpt-4o", "messages": [], "stream_options": []},
            "stream_options",
            "`stream_options`",
        ),
    ],
)
def test_400_fields_say_which(
    gw: Gateway, up: Upstream, body: dict[str, Any], param: str, words: str
) -> None:
    error = error_of(post(gw, body), 400)
    assert error["param"] == param
    assert words in error["message"]
    assert up.count == 0


def test_400_other_endpoints(gw: Gateway) -> None:
    assert error_of(post(gw, {"model": "gpt-4o"}, "/v1/completions"), 400)["param"] == "prompt"
    assert (
        error_of(post(gw, {"model": "text-embedding-3", "input": 5}, "/v1/embeddings"), 400)[
            "param"
        ]
        == "input"
    )


def test_400_through_sdk(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(KEY).chat.completions.create(model="gpt-4o", messages="nope")  # type: ignore[arg-type]
    assert "`messages` must be a list" in caught.value.message


def test_404_no_route_names_model_and_routes(gw: Gateway) -> None:
    error = error_of(post(gw, {"model": "claude-3-opus", "messages": []}), 404)
    assert "claude-3-opus" in error["message"]
    assert "`chat`" in error["message"] and "`down`" in error["message"]
    assert error["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        gw.client(KEY).chat.completions.create(model="claude-3-opus", messages=[])


def test_404_unserved_path(gw: Gateway) -> None:
    error = error_of(post(gw, {"model": "gpt-4o", "input": "x"}, "/v1/moderations"), 404)
    assert "/v1/moderations" in error["message"]


def test_413_body_over_limit(gw: Gateway, up: Upstream) -> None:
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}
    error = error_of(post(gw, big), 413)
    assert str(MAX_BODY) in error["message"]
    assert up.count == 0


def test_413_chunked_body_over_limit(gw: Gateway, up: Upstream) -> None:
    """Without a Content-Length the limit still holds, counted as the body arrives."""

    def body() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    error = error_of(post(gw, body()), 413)
    assert str(MAX_BODY) in error["message"]
    assert up.count == 0


def test_body_under_limit_is_served(gw: Gateway) -> None:
    small = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (MAX_BODY - 200)}]}
    assert post(gw, small).status_code == 200


def test_405_get_on_post_path(gw: Gateway) -> None:
    response = httpx.get(f"{gw.url}/v1/chat/completions", timeout=10)
    error = error_of(response, 405)
    assert "POST" in error["message"]


def test_405_names_allowed_method(gw: Gateway) -> None:
    response = httpx.get(f"{gw.url}/v1/chat/completions", timeout=10)
    assert response.headers.get("allow") == "POST"


def test_502_upstream_5xx_without_fallback(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(status=500, echo_auth=True)]
    response = post(gw, {"model": "gpt-4o", "messages": []})
    error = error_of(response, 502)  # also checks that the echoed key is gone
    assert "500" in error["message"]
    assert "upstream says 500" in error["message"]
    assert "[redacted]" in error["message"]
    assert response.headers["x-stockyard-route"] == "chat"


def test_502_through_sdk(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(status=503)]
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client(KEY).chat.completions.create(model="gpt-4o", messages=[])
    assert caught.value.status_code == 502
    assert "503" in caught.value.message


def test_upstream_4xx_passes_through_scrubbed(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(status=401, echo_auth=True)]
    error = error_of(post(gw, {"model": "gpt-4o", "messages": []}), 401)
    assert "upstream says 401" in error["message"]


def test_429_without_fallback_keeps_retry_after(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(status=429, headers={"retry-after": "7"})]
    response = post(gw, {"model": "gpt-4o", "messages": []})
    error = error_of(response, 429)
    assert error["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "7"


def test_503_every_provider_down(gw: Gateway) -> None:
    error = error_of(post(gw, {"model": "down-1", "messages": []}), 503)
    assert "dead" in error["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client(KEY).chat.completions.create(model="down-2", messages=[])
    assert caught.value.status_code == 503


def test_504_timeout(gw: Gateway, up: Upstream) -> None:
    up.script = [Behaviour(delay=3)]
    error = error_of(post(gw, {"model": "gpt-4o", "messages": []}), 504)
    assert error["type"] == "timeout_error"
    assert "500ms" in error["message"]


def test_stream_errors_before_first_byte_are_plain_json(gw: Gateway, up: Upstream) -> None:
    """A stream that fails before its first byte gets a normal JSON error and status."""
    up.script = [Behaviour(status=500)]
    with pytest.raises(openai.APIStatusError) as caught:
        list(gw.client(KEY).chat.completions.create(model="gpt-4o", messages=[], stream=True))
    assert caught.value.status_code == 502


@pytest.mark.parametrize("value", ["soon", "inf", "99999999999"])
def test_429_with_odd_retry_after(gw: Gateway, up: Upstream, value: str) -> None:
    up.script = [Behaviour(status=429, headers={"retry-after": value})]
    response = post(gw, {"model": "gpt-4o", "messages": []})
    error_of(response, 429)
    retry = response.headers.get("retry-after")
    assert retry is None or (retry.isdigit() and int(retry) <= 86_400)
