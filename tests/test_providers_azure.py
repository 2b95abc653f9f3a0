"""The Azure OpenAI adapter end to end: OpenAI payloads on per-deployment URLs with an
``api-version`` query and an ``api-key`` header, against a fake Azure resource on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import httpx
import openai
import pytest

from stockyard.core.generation import ProviderSpec
from stockyard.core.values import EnvRef
from stockyard.exceptions import UpstreamFailure
from stockyard.providers.azure import AzureAdapter
from stockyard.providers.base import Timeouts, UpstreamRequest
from stockyard.providers.clients import HttpClients

from .fake_providers import FakeAzure, data_of, sse_events, trace_id
from .harness import Behaviour, Gateway, Upstream, provider, running_gateway

KEY = "azure-key-0123456789abcdef"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def az() -> Iterator[FakeAzure]:
    server = FakeAzure("azure", deployments=("prod-4o", "gpt-4o-mini", "embedder"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def backup() -> Iterator[Upstream]:
    server = Upstream("backup")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, az: FakeAzure, backup: Upstream
) -> Iterator[Gateway]:
    pipe = (
        f"""
provider azure {{
  kind        azure
  base_url    env("SY_TEST_AZURE_ENDPOINT")
  api_key     env("SY_TEST_AZURE_KEY")
  api_version "2024-10-21"
  deployments ["gpt-4o" -> "prod-4o", "text-embedding-3-small" -> "embedder"]
}}

provider azure_passthrough {{
  kind        azure
  base_url    "{az.url}/openai/"
  api_version "2024-06-01"
}}
"""
        + provider("backup", backup.url)
        + """
route failover {
  path    /v1/chat/completions
  models  "fo-*"
  chain   azure(model: "gpt-4o") -> backup(model: "gpt-4o-mini")
  modules [trace]
}

route passthrough {
  path    /v1/chat/completions
  models  "pt-*"
  chain   azure_passthrough(model: "gpt-4o-mini")
  modules [trace]
}

route azure {
  path    /v1/chat/completions, /v1/embeddings
  chain   azure
  modules [trace]
}
"""
    )
    env = {
        "SY_TEST_AZURE_ENDPOINT": az.url,
        "SY_TEST_AZURE_KEY": KEY,
        "STOCKYARD_BREAKER_THRESHOLD": "100000",
    }
    with running_gateway(tmp_path_factory.mktemp("azure"), {"main.pipe": pipe}, env=env) as g:
        yield g


@pytest.fixture(autouse=True)
def _fresh(az: FakeAzure, backup: Upstream) -> None:
    az.reset()
    backup.reset()


def test_chat_goes_to_the_mapped_deployment(gw: Gateway, az: FakeAzure) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "temperature": 0.3}
    raw = json.dumps(body, separators=(",", ":"))
    response = gw.api(
        "POST",
        "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json", "authorization": "Bearer caller-secret"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "azure answers gpt-4o"
    assert az.deployments_seen == ["prod-4o"]
    received = az.last
    assert received.path == "/openai/deployments/prod-4o/chat/completions"
    assert az.queries[-1] == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == KEY
    assert "Authorization" not in received.headers  # neither the caller's key nor ours
    assert received.body == body  # the OpenAI payload, untouched


def test_unmapped_model_is_its_own_deployment(gw: Gateway, az: FakeAzure) -> None:
    answer = gw.client().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "azure answers gpt-4o-mini"
    assert az.deployments_seen == ["gpt-4o-mini"]


def test_unknown_deployment_is_azures_404(gw: Gateway, az: FakeAzure) -> None:
    with pytest.raises(openai.NotFoundError, match="deployment nope does not exist"):
        gw.client().chat.completions.create(model="nope", messages=HELLO)


def test_stream_with_usage_captured(gw: Gateway, az: FakeAzure) -> None:
    with gw.client().chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HELLO, stream=True
    ) as response:
        tid = trace_id(response)
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "azure answers gpt-4o"
    assert all(c.usage is None for c in chunks)  # usage was asked for by us, not the caller
    assert az.last.body["stream_options"] == {"include_usage": True}
    trace = gw.trace(tid)
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (11, 7)


def test_embeddings(gw: Gateway, az: FakeAzure) -> None:
    result = gw.client().embeddings.create(
        model="text-embedding-3-small", input="hi", encoding_format="float"
    )
    assert result.data[0].embedding == [0.1, 0.2, 0.3]
    assert az.last.path == "/openai/deployments/embedder/embeddings"


def test_passthrough_key_and_an_endpoint_ending_in_openai(gw: Gateway, az: FakeAzure) -> None:
    gw.client(api_key="callers-azure-key-1234").chat.completions.create(
        model="pt-x", messages=HELLO
    )
    assert az.last.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert az.last.headers["api-key"] == "callers-azure-key-1234"
    assert az.queries[-1] == {"api-version": "2024-06-01"}


def test_server_error_fails_over(gw: Gateway, az: FakeAzure, backup: Upstream) -> None:
    az.script = [Behaviour(status=500)]
    raw = gw.client().chat.completions.with_raw_response.create(model="fo-1", messages=HELLO)
    assert raw.parse().choices[0].message.content == "backup answers gpt-4o-mini"
    attempts = gw.trace(trace_id(raw))["attempts"]
    assert [(a["provider"], a["status"]) for a in attempts] == [("azure", 500), ("backup", 200)]


def test_bad_request_does_not_fail_over(gw: Gateway, az: FakeAzure, backup: Upstream) -> None:
    az.script = [Behaviour(status=400)]
    with pytest.raises(openai.BadRequestError, match="azure says 400"):
        gw.client().chat.completions.create(model="fo-1", messages=HELLO)
    assert backup.count == 0


def test_mid_stream_failure_is_an_sse_error(gw: Gateway, az: FakeAzure) -> None:
    az.script = [Behaviour(words=5, fail_after_chunks=2, chunk_delay=0.05)]
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=20) as r:
        events = data_of(sse_events(r.read().decode()))
    assert "[DONE]" not in events and "error" in events[-1]


# --- unit ------------------------------------------------------------------------------------


def spec(base_url: Any, **options: Any) -> ProviderSpec:
    return ProviderSpec(
        name="az",
        kind="azure",
        protocol="azure",
        base_url=base_url,
        api_key=None,
        timeout=None,
        connect_timeout=None,
        max_connections=None,
        headers=(),
        options=MappingProxyType({"api_version": "2024-10-21", **options}),
        source="",
    )


class _Ctx:
    upstream_headers: dict[str, str | None] = {}


def request(model: str, endpoint: str = "chat/completions", key: str | None = "k") -> Any:
    return UpstreamRequest(
        _Ctx(),  # type: ignore[arg-type]
        spec("x"),
        endpoint,
        model,
        False,
        Timeouts(1, 1, None),
        key,
    )


def test_url_and_headers() -> None:
    adapter = AzureAdapter(
        spec("https://res.openai.azure.com/", deployments=(("gpt-4o", "my 4o"),)), HttpClients()
    )
    assert adapter.url(request("gpt-4o")) == (
        "https://res.openai.azure.com/openai/deployments/my%204o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert adapter.url(request("o3", "completions")).endswith(
        "/deployments/o3/completions?api-version=2024-10-21"
    )
    headers = adapter.request_headers(request("gpt-4o", key="secret"))
    assert headers["api-key"] == "secret" and "authorization" not in headers


def test_unset_endpoint_never_falls_back_to_openai() -> None:
    adapter = AzureAdapter(spec(EnvRef("SY_TEST_SURELY_UNSET_VARIABLE")), HttpClients())
    with pytest.raises(UpstreamFailure, match="no endpoint") as caught:
        asyncio.run(adapter.send(request("gpt-4o")))
    assert caught.value.kind == "connect"
