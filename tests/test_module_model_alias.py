"""``model_alias`` end to end through the real server and the official SDK: the upstream sees
the served name, the trace keeps what the caller asked for (``model``) and what was sent
(``served_model``); streams too; unmapped names and hop rewrites behave."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from .harness import Gateway, Upstream, provider, running_gateway

PIPE = """
route alias {
  path    /v1/chat/completions, /v1/embeddings
  models  "fast", "smart", "gpt-4o"
  chain   up
  modules [trace, audit, model_alias(map: ["fast" -> "gpt-4o-mini", "smart" -> "gpt-4o"])]
}

# A hop's own `model:` rewrite is applied after the alias, and wins.
route pinned {
  path    /v1/chat/completions
  models  "pinned"
  chain   up(model: "gpt-4.1-nano")
  modules [trace, model_alias(map: ["pinned" -> "gpt-4o"])]
}
"""


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("aliased")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    files = {"main.pipe": provider("up", up.url) + PIPE}
    with running_gateway(tmp_path_factory.mktemp("alias"), files, start_timeout=60) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def test_alias_is_rewritten_for_the_upstream_and_traced_as_asked(gw: Gateway, up: Upstream) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    completion = raw.parse()
    assert up.models() == ["gpt-4o-mini"]
    sent = up.received[0].body
    assert sent["temperature"] == 0.5 and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert completion.model == "gpt-4o-mini"  # the upstream's answer, untouched
    assert completion.choices[0].message.content == "aliased answers gpt-4o-mini"
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert trace["model"] == "fast"
    assert trace["served_model"] == "gpt-4o-mini"
    assert trace["notes"]["model_alias"] == {"from": "fast", "to": "gpt-4o-mini"}
    # priced as what was served (gpt-4o-mini is in the shipped table), not as the alias
    assert trace["priced"] is True and trace["cost"] not in (None, "0")


def test_alias_on_a_stream(gw: Gateway, up: Upstream) -> None:
    stream = gw.client().chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in stream.parse() if chunk.choices
    )
    assert text == "aliased answers gpt-4o"
    assert up.models() == ["gpt-4o"]
    trace = gw.trace(stream.headers["x-stockyard-trace-id"])
    assert (trace["model"], trace["served_model"], trace["stream"]) == ("smart", "gpt-4o", True)
    assert trace["completion_tokens"] == 7  # usage captured from the stream


def test_unmapped_model_passes_untouched(gw: Gateway, up: Upstream) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert up.models() == ["gpt-4o"]
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert (trace["model"], trace["served_model"]) == ("gpt-4o", "gpt-4o")
    assert "model_alias" not in trace["notes"]


def test_embeddings_are_aliased_too(gw: Gateway, up: Upstream) -> None:
    result = gw.client().embeddings.create(model="fast", input="hello")
    assert up.models() == ["gpt-4o-mini"]
    assert len(result.data[0].embedding) == 3


def test_hop_rewrite_wins_over_the_alias(gw: Gateway, up: Upstream) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="pinned", messages=[{"role": "user", "content": "hi"}]
    )
    assert up.models() == ["gpt-4.1-nano"]
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert (trace["model"], trace["served_model"]) == ("pinned", "gpt-4.1-nano")


def test_the_served_name_itself_is_not_routed(gw: Gateway, up: Upstream) -> None:
    """Routing happens before modules: the route must list the alias, not the served name."""
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "no_route"
    assert up.count == 0


def test_alias_pipeline_checks_clean(gw: Gateway) -> None:
    result = gw.check()
    assert result.returncode == 0, result.stdout + result.stderr
