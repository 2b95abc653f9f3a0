"""The compiled :class:`~stockyard.core.generation.Generation`, from small ``.pipe`` sources.

Each test compiles a few lines and asserts the exact values the gateway will use.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from stockyard.catalog import check
from stockyard.core.generation import (
    CapSpec,
    HopSpec,
    Policy,
    PriceSpec,
    TierSpec,
)
from stockyard.core.values import EnvRef, RateValue
from stockyard.dsl import CheckOptions, Generation, render_text

OPTIONS = CheckOptions(check_env=False)

PROVIDERS = """\
provider openai { kind openai }
provider claude { kind anthropic }
provider groq { kind groq; api_key env("GROQ_API_KEY") }
provider together { kind together }
"""


def compile_ok(sources: dict[str, str] | str, options: CheckOptions = OPTIONS) -> Generation:
    if isinstance(sources, str):
        sources = {"main.pipe": sources}
    result = check(sources, options)
    assert not result.errors, render_text(result.errors, sources)
    assert result.generation is not None
    return result.generation


def route(generation: Generation, name: str):  # type: ignore[no-untyped-def]
    matches = [r for r in generation.routes if r.name == name]
    assert len(matches) == 1, [r.name for r in generation.routes]
    return matches[0]


def one_route(body: str, extra: str = "") -> Generation:
    return compile_ok(
        PROVIDERS + extra + "route r {\n  path /v1/chat/completions\n" + body + "\n}\n"
    )


# --- route order ------------------------------------------------------------------------------


def test_routes_in_order_of_files_sorted_by_path_then_top_to_bottom() -> None:
    sources = {
        "b.pipe": "route b1 { path /v1/x; chain openai }\nroute b2 { path /v1/y; chain openai }\n",
        "sub/a.pipe": "route sub_a { path /v1/z; chain openai }\n",
        "a.pipe": "route a1 { path /v1/w; chain openai }\n" + PROVIDERS,
        "c.pipe": "route c1 { path /v1/v; chain claude }\nroute c0 { path /v1/u; chain groq }\n",
    }
    generation = compile_ok(sources)
    assert [r.name for r in generation.routes] == ["a1", "b1", "b2", "c1", "c0", "sub_a"]
    assert generation.files == ("a.pipe", "b.pipe", "c.pipe", "sub/a.pipe")
    # Order does not depend on the order the sources were given in.
    reversed_sources = dict(reversed(list(sources.items())))
    assert [r.name for r in compile_ok(reversed_sources).routes] == [
        r.name for r in generation.routes
    ]


def test_route_source_points_at_its_header() -> None:
    generation = compile_ok({"x.pipe": PROVIDERS + "\n\nroute r { path /v1/a; chain openai }\n"})
    line = PROVIDERS.count("\n") + 3
    assert route(generation, "r").source == f"x.pipe:{line}:1"


def test_providers_across_files_are_resolved() -> None:
    generation = compile_ok(
        {"providers.pipe": PROVIDERS, "routes.pipe": "route r { path /v1/a; chain claude }"}
    )
    assert set(generation.providers) == {"openai", "claude", "groq", "together"}
    assert route(generation, "r").chain == (TierSpec((HopSpec("claude", None, 1),)),)


# --- chains -------------------------------------------------------------------------------------


def test_chain_tiers_with_per_hop_model_and_weight() -> None:
    generation = one_route(
        'chain openai(model: "gpt-4o-mini", weight: 3) | groq(weight: 2) -> '
        'claude(model: "claude-3-5-haiku-latest") -> together(model: "llama-3.1-8b")'
    )
    r = route(generation, "r")
    assert r.chain == (
        TierSpec((HopSpec("openai", "gpt-4o-mini", 3), HopSpec("groq", None, 2))),
        TierSpec((HopSpec("claude", "claude-3-5-haiku-latest", 1),)),
        TierSpec((HopSpec("together", "llama-3.1-8b", 1),)),
    )
    assert [t.total_weight for t in r.chain] == [5, 1, 1]
    assert r.chain_text() == (
        'openai(model: "gpt-4o-mini", weight: 3) | groq(weight: 2) -> '
        'claude(model: "claude-3-5-haiku-latest") -> together(model: "llama-3.1-8b")'
    )


def test_single_provider_chain_is_one_tier_of_one_hop() -> None:
    r = route(one_route("chain openai"), "r")
    assert r.chain == (TierSpec((HopSpec("openai", None, 1),)),)
    assert r.chain_text() == "openai"


def test_balanced_tier_without_failover() -> None:
    r = route(one_route("chain openai | claude | groq(weight: 10)"), "r")
    assert len(r.chain) == 1
    assert [(h.provider, h.weight) for h in r.chain[0].hops] == [
        ("openai", 1),
        ("claude", 1),
        ("groq", 10),
    ]


# --- policy: failover, retry, timeout -------------------------------------------------------


def test_policy_defaults_when_nothing_is_set() -> None:
    r = route(one_route("chain openai -> claude"), "r")
    assert r.policy == Policy(
        failover_on=frozenset({"5xx", "429", "timeout", "connect"}),
        retries=0,
        backoff=0.2,
        max_backoff=10.0,
        timeout=None,
        first_token_timeout=None,
        connect_timeout=None,
    )


def test_policy_set_on_the_route() -> None:
    r = route(
        one_route(
            "chain openai -> claude\n"
            "failover on [500, 503, 4xx, connect]\n"
            "retry 3 backoff 250ms max_backoff 2m\n"
            "timeout 45s first_token 1500ms connect 2s"
        ),
        "r",
    )
    assert r.policy.failover_on == frozenset({"500", "503", "4xx", "connect"})
    assert r.policy.retries == 3
    assert r.policy.backoff == pytest.approx(0.25)
    assert r.policy.max_backoff == pytest.approx(120.0)
    assert r.policy.timeout == pytest.approx(45.0)
    assert r.policy.first_token_timeout == pytest.approx(1.5)
    assert r.policy.connect_timeout == pytest.approx(2.0)


def test_failover_off_is_an_empty_set() -> None:
    r = route(one_route("chain openai -> claude\nfailover off"), "r")
    assert r.policy.failover_on == frozenset()


def test_policy_inherited_from_defaults() -> None:
    defaults = (
        "defaults {\n"
        "  failover on [5xx, timeout]\n"
        "  retry 2 backoff 100ms\n"
        "  timeout 20s first_token 4s\n"
        "}\n"
    )
    generation = compile_ok(
        PROVIDERS
        + defaults
        + "route inherits { path /v1/a; chain openai -> claude }\n"
        + "route own { path /v1/b; chain openai\n  failover off\n  retry 0\n  timeout 1m }\n"
        + "route some { path /v1/c; chain openai\n  retry 5 }\n"
    )
    inherits = route(generation, "inherits").policy
    assert inherits.failover_on == frozenset({"5xx", "timeout"})
    assert inherits.retries == 2
    assert inherits.backoff == pytest.approx(0.1)
    assert inherits.max_backoff == 10.0  # not set anywhere: the built-in default
    assert inherits.timeout == pytest.approx(20.0)
    assert inherits.first_token_timeout == pytest.approx(4.0)

    own = route(generation, "own").policy
    assert own.failover_on == frozenset()
    assert own.retries == 0
    assert own.backoff == 0.2
    assert own.timeout == pytest.approx(60.0)
    # An attribute set on the route replaces the defaults' attribute whole.
    assert own.first_token_timeout is None

    some = route(generation, "some").policy
    assert some.retries == 5
    assert some.backoff == 0.2  # the route's `retry` replaces the defaults' `retry … backoff …`
    assert some.failover_on == frozenset({"5xx", "timeout"})  # still inherited
    assert some.timeout == pytest.approx(20.0)


def test_defaults_in_another_file_apply_to_every_route() -> None:
    generation = compile_ok(
        {
            "0-defaults.pipe": "defaults { retry 4; modules [trace] }",
            "1-providers.pipe": PROVIDERS,
            "2-routes.pipe": "route r { path /v1/a; chain openai }",
        }
    )
    r = route(generation, "r")
    assert r.policy.retries == 4
    assert [m.name for m in r.modules] == ["trace"]


# --- caps -----------------------------------------------------------------------------------


def test_cap_amounts_are_decimals() -> None:
    r = route(
        one_route("chain openai\ncap daily $25.50 monthly $400 per key\nmodules [auth, cost_cap]"),
        "r",
    )
    assert r.cap == CapSpec(daily=Decimal("25.50"), monthly=Decimal("400"), per="key")
    assert isinstance(r.cap.daily, Decimal) and isinstance(r.cap.monthly, Decimal)


def test_cap_per_defaults_to_project_and_one_amount_is_enough() -> None:
    r = route(one_route("chain openai\ncap monthly $0.05\nmodules [cost_cap]"), "r")
    assert r.cap == CapSpec(daily=None, monthly=Decimal("0.05"), per="project")


def test_no_cap() -> None:
    assert route(one_route("chain openai"), "r").cap is None


# --- prices -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written,per_million",
    [
        ("$0.15/1M", "0.15"),
        ("$0.00015/1K", "0.15"),
        ("$0.00015/1k", "0.15"),
        ("$0.15/1000000", "0.15"),
        ("$2.50/1M", "2.5"),
        ("$0.003/1K", "3"),
        ("$15/1M", "15"),
        ("$1/1000", "1000"),
        ("$0.5/2M", "0.25"),
        ("$0/1M", "0"),
    ],
)
def test_prices_are_normalised_to_dollars_per_million_tokens(
    written: str, per_million: str
) -> None:
    generation = compile_ok(
        PROVIDERS
        + f'price "my-model" {{ input {written}; output {written} }}\n'
        + "route r { path /v1/a; chain openai }"
    )
    price = generation.prices["my-model"]
    assert isinstance(price.input, Decimal)
    assert price.input == Decimal(per_million)
    assert price.output == Decimal(per_million)


def test_price_block_fields_and_cached_default() -> None:
    generation = compile_ok(
        PROVIDERS
        + 'price "a" {\n  input $0.00015/1K  output $0.60/1M\n}\n'
        + 'price "b" { input $3/1M; output $15/1M; cached $0.30/1M }\n'
        + "route r { path /v1/a; chain openai }"
    )
    a, b = generation.prices["a"], generation.prices["b"]
    assert (a.model, a.input, a.output) == ("a", Decimal("0.15"), Decimal("0.60"))
    assert a.cached == a.input  # cached defaults to the input price
    assert a.source == f"main.pipe:{PROVIDERS.count(chr(10)) + 1}:1"
    assert b == PriceSpec("b", Decimal("3"), Decimal("15"), Decimal("0.30"), b.source)
    assert set(generation.prices) == {"a", "b"}


# --- modules ----------------------------------------------------------------------------------


def test_module_params_have_defaults_filled_in() -> None:
    r = route(
        one_route(
            "chain openai\n"
            "modules [trace, audit, auth, rate_limit(requests: 60/min, per: key), "
            "cache(ttl: 10m), max_tokens(limit: 1024)]"
        ),
        "r",
    )
    modules = {m.name: dict(m.params) for m in r.modules}
    assert [m.name for m in r.modules] == [
        "trace",
        "audit",
        "auth",
        "rate_limit",
        "cache",
        "max_tokens",
    ]
    assert modules["trace"] == {"bodies": False, "max_body": 65536}
    assert modules["audit"] == {}
    assert modules["auth"] == {"header": "x-stockyard-key"}
    assert modules["rate_limit"] == {
        "requests": RateValue(Decimal(60), 60),
        "tokens": None,
        "per": "key",
    }
    assert modules["cache"] == {"ttl": 600.0, "max_entries": 10000, "streams": True}
    assert modules["max_tokens"] == {"limit": 1024, "action": "clamp"}


def test_module_param_values_are_typed() -> None:
    r = route(
        one_route(
            "chain openai\n"
            "modules [trace(bodies: true, max_body: 16KiB), "
            "rate_limit(tokens: 100k/min, requests: 5/s), "
            'model_alias(map: ["fast" -> "gpt-4o-mini", "smart" -> "gpt-4o"]), '
            "redact(kinds: [email], restore: true)]"
        ),
        "r",
    )
    params = {m.name: m.params for m in r.modules}
    assert params["trace"]["bodies"] is True
    assert params["trace"]["max_body"] == 16 * 1024
    assert params["rate_limit"]["tokens"] == RateValue(Decimal(100_000), 60)
    assert params["rate_limit"]["requests"] == RateValue(Decimal(5), 1)
    assert params["rate_limit"]["per"] == "project"
    assert params["model_alias"]["map"] == (("fast", "gpt-4o-mini"), ("smart", "gpt-4o"))
    assert params["redact"]["kinds"] == ("email",)
    assert params["redact"]["restore"] is True


def test_route_modules_from_defaults_unless_the_route_sets_its_own() -> None:
    generation = compile_ok(
        PROVIDERS
        + "defaults { modules [trace, audit] }\n"
        + "route inherits { path /v1/a; chain openai }\n"
        + "route own { path /v1/b; chain openai\n  modules [cache(ttl: 1m)] }\n"
        + "route none { path /v1/c; chain openai\n  modules [] }\n"
    )
    assert [m.name for m in route(generation, "inherits").modules] == ["trace", "audit"]
    assert [(m.name, m.params["ttl"]) for m in route(generation, "own").modules] == [
        ("cache", 60.0)
    ]
    assert route(generation, "none").modules == ()


def test_no_modules_anywhere() -> None:
    assert route(one_route("chain openai"), "r").modules == ()


# --- route_for ------------------------------------------------------------------------------

MATCHING = (
    PROVIDERS
    + """
route mini      { path /v1/chat/completions; models "gpt-4o-mini"; chain openai }
route four_o    { path /v1/chat/completions, /v1/responses; models "gpt-4o*"; chain openai }
route dotted    { path /v1/chat/completions; models "gpt-4.1?", "o?-mini"; chain openai }
route claude    { path /v1/messages; models "claude-*"; chain claude }
route fallback  { path /v1/chat/completions; chain groq }
route embed_all { path /v1/embeddings; models "*"; chain openai }
"""
)


@pytest.mark.parametrize(
    "path,model,expected",
    [
        ("/v1/chat/completions", "gpt-4o-mini", "mini"),  # first match wins
        ("/v1/chat/completions", "gpt-4o-mini-2024-07-18", "four_o"),
        ("/v1/chat/completions", "gpt-4o", "four_o"),  # `*` matches the empty run
        ("/v1/responses", "gpt-4o-mini", "four_o"),  # a route's second path
        ("/v1/chat/completions", "gpt-4.1x", "dotted"),  # `?` is one character
        ("/v1/chat/completions", "gpt-4.1", "fallback"),  # … exactly one
        ("/v1/chat/completions", "gpt-4.1xy", "fallback"),
        ("/v1/chat/completions", "gpt-4x1a", "fallback"),  # `.` is a literal dot
        ("/v1/chat/completions", "o3-mini", "dotted"),
        ("/v1/chat/completions", "llama-3", "fallback"),  # no models: matches everything
        ("/v1/chat/completions", "", "fallback"),
        ("/v1/chat/completions", "GPT-4O", "fallback"),  # case-sensitive
        ("/v1/chat/completions", "my-gpt-4o", "fallback"),  # anchored at the start
        ("/v1/messages", "claude-3-5-sonnet-latest", "claude"),
        ("/v1/messages", "gpt-4o", None),  # nothing on this path matches
        ("/v1/embeddings", "text-embedding-3-small", "embed_all"),  # "*" matches everything
        ("/v1/unknown", "gpt-4o", None),  # unknown path
        ("/v1/chat/completions/", "gpt-4o", None),  # paths match exactly
    ],
)
def test_route_for(path: str, model: str, expected: str | None) -> None:
    generation = compile_ok(MATCHING)
    found = generation.route_for(path, model)
    assert (found.name if found else None) == expected


def test_route_for_multiline_model_names() -> None:
    generation = compile_ok(MATCHING)
    assert generation.route_for("/v1/chat/completions", "gpt-4o\nx").name == "four_o"
    assert generation.route_for("/v1/chat/completions", "gpt-4o-mini\n").name == "four_o"


def test_route_for_pattern_with_regex_characters_is_literal() -> None:
    generation = compile_ok(
        PROVIDERS
        + 'route r { path /v1/a; models "a+b(c)[d]|e"; chain openai }\n'
        + "route f { path /v1/a; chain claude }\n"
    )
    assert generation.route_for("/v1/a", "a+b(c)[d]|e").name == "r"
    assert generation.route_for("/v1/a", "aab(c)[d]|e").name == "f"
    assert generation.route_for("/v1/a", "e").name == "f"


def test_routes_by_path_keeps_declaration_order() -> None:
    generation = compile_ok(MATCHING)
    assert [r.name for r in generation.routes_by_path["/v1/chat/completions"]] == [
        "mini",
        "four_o",
        "dotted",
        "fallback",
    ]
    assert [r.name for r in generation.routes_by_path["/v1/responses"]] == ["four_o"]


# --- source hash ----------------------------------------------------------------------------

HASHED = PROVIDERS + "route r { path /v1/a; chain openai }\n"


def test_source_hash_is_stable() -> None:
    first = compile_ok({"a.pipe": HASHED, "b.pipe": "# nothing\n"}).source_hash
    again = compile_ok({"b.pipe": "# nothing\n", "a.pipe": HASHED}).source_hash
    assert first == again
    assert re.fullmatch("[0-9a-f]{64}", first), first  # a SHA-256, as lowercase hex


@pytest.mark.parametrize(
    "changed",
    [
        {"a.pipe": HASHED + "# a comment\n", "b.pipe": "# nothing\n"},  # a comment
        {"a.pipe": HASHED.replace("/v1/a", "/v1/b"), "b.pipe": "# nothing\n"},
        {"a.pipe": HASHED, "b.pipe": "# nothing \n"},  # whitespace
        {"c.pipe": HASHED, "b.pipe": "# nothing\n"},  # a file renamed
        {"a.pipe": HASHED},  # a file removed
        {"a.pipe": HASHED + "# nothing\n", "b.pipe": ""},  # text moved between files
    ],
)
def test_source_hash_changes_with_content(changed: dict[str, str]) -> None:
    base = compile_ok({"a.pipe": HASHED, "b.pipe": "# nothing\n"}).source_hash
    assert compile_ok(changed).source_hash != base


# --- providers and env() --------------------------------------------------------------------


def test_env_values_are_kept_as_references_not_resolved() -> None:
    source = (
        "provider az {\n"
        "  kind azure\n"
        '  base_url env("AZ_URL")\n'
        '  api_key env("AZ_KEY")\n'
        '  api_version "2024-10-21"\n'
        '  header "X-Org" env("AZ_ORG")\n'
        '  header "X-Team" "search"\n'
        "}\n"
        "route r { path /v1/a; chain az }\n"
    )
    environ = {"AZ_URL": "https://resolved.example", "AZ_KEY": "sk-resolved", "AZ_ORG": "o"}
    for options in (OPTIONS, CheckOptions(check_env=True, environ=environ)):
        provider = compile_ok(source, options).providers["az"]
        assert provider.base_url == EnvRef("AZ_URL", provider.base_url.span)
        assert isinstance(provider.api_key, EnvRef) and provider.api_key.name == "AZ_KEY"
        assert provider.headers == (
            ("X-Org", EnvRef("AZ_ORG", provider.headers[0][1].span)),
            ("X-Team", "search"),
        )
        assert str(provider.api_key) == 'env("AZ_KEY")'
        assert provider.api_key.span is not None and provider.api_key.span.line == 4
        assert provider.options["api_version"] == "2024-10-21"


def test_provider_spec_values_and_defaults() -> None:
    generation = compile_ok(
        "provider openai {\n"
        "  kind openai\n"
        "  timeout 1m\n"
        "  connect_timeout 500ms\n"
        "  max_connections 20\n"
        "}\n"
        "provider local { kind ollama; api_key none }\n"
        'provider custom { kind openai; base_url "https://llm.example.com/v1/"; api_key passthrough }\n'
        "route r { path /v1/a; chain openai -> local -> custom }\n"
    )
    openai, local, custom = (generation.providers[n] for n in ("openai", "local", "custom"))
    assert (openai.kind, openai.protocol) == ("openai", "openai")
    assert openai.base_url == "https://api.openai.com/v1"  # the kind's default
    assert openai.api_key == "passthrough"  # the default: forward the caller's key
    assert openai.timeout == pytest.approx(60.0)
    assert openai.connect_timeout == pytest.approx(0.5)
    assert openai.max_connections == 20
    assert openai.headers == ()
    assert (local.kind, local.protocol) == ("ollama", "openai")
    assert local.base_url == "http://127.0.0.1:11434/v1"
    assert local.api_key is None
    assert local.timeout is None
    assert custom.base_url == "https://llm.example.com/v1"  # trailing slash dropped
    assert custom.api_key == "passthrough"


def test_generation_is_immutable() -> None:
    generation = compile_ok(PROVIDERS + "route r { path /v1/a; chain openai; modules [cache] }")
    with pytest.raises(TypeError):
        generation.providers["x"] = generation.providers["openai"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        generation.routes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        generation.routes[0].modules[0].params["x"] = 1  # type: ignore[index]


def test_mock_provider_needs_no_base_url() -> None:
    generation = compile_ok(
        "provider fake { kind mock; latency 5ms }\nroute r { path /v1/a; chain fake }\n"
    )
    assert generation.providers["fake"].protocol == "mock"
    assert generation.providers["fake"].base_url is None
