"""The top-level statements of the language and their attributes."""

from __future__ import annotations

from typing import Any

from . import syntax
from .schema import AttributeSpec, BlockSpec, frozen_map
from .value_types import (
    TYPE_MISMATCH,
    Choice,
    Condition,
    Duration,
    Glob,
    Integer,
    ListOf,
    Money,
    Price,
    Secret,
    Text,
    Url,
    UrlPath,
    ValueProblem,
    ValueType,
    Word,
)


class Expression(ValueType):
    """A chain or a module list: kept as syntax here, resolved by the checker against names."""

    def __init__(self, words: str, example: str, *accepted: type) -> None:
        self.words = words
        self.example = example
        self.accepted = accepted

    def from_ast(self, value: syntax.Value) -> syntax.Value:
        if isinstance(value, self.accepted):
            return value
        raise self.mismatch(value)

    def from_json(self, value: Any) -> Any:
        raise self.json_mismatch(value)


class ChainExpression(Expression):
    def from_ast(self, value: syntax.Value) -> syntax.Value:
        if isinstance(value, syntax.Literal) and value.kind == "string":
            raise ValueProblem(
                TYPE_MISMATCH,
                f"provider names are bare words: found the string {value.raw}",
                value.span,
                "remove the quotes",
                f"write `chain {value.text}`",
            )
        return super().from_ast(value)


CHAIN = ChainExpression(
    "a provider chain", "openai -> claude", syntax.Chain, syntax.Tier, syntax.Ident, syntax.Call
)
MODULE_LIST = Expression("a list of modules", "[trace, audit, cache(ttl: 10m)]", syntax.ListValue)

_FAILOVER = AttributeSpec(
    "failover",
    "When to move on to the next provider in the chain (`off`: never).",
    "failover on [5xx, 429, timeout, connect]",
    positional=(Choice("off", what="failover setting"),),
    optional_positional=True,
    clauses=frozen_map({"on": ListOf(Condition(), min_items=1)}),
    exclusive=True,
)
DEFAULT_BACKOFF = 0.2  # seconds: the first wait before a retry, doubled for each next one
DEFAULT_MAX_BACKOFF = 10.0  # seconds: the longest wait
_RETRY = AttributeSpec(
    "retry",
    "Retries on the same provider before failing over, with exponential backoff and jitter.",
    "retry 2 backoff 200ms",
    positional=(Integer(0, 10),),
    clauses=frozen_map({"backoff": Duration("1ms", "1m"), "max_backoff": Duration("1ms", "10m")}),
)
_TIMEOUT = AttributeSpec(
    "timeout",
    "Total time for one attempt; `first_token` bounds the wait for a stream's first chunk.",
    "timeout 30s first_token 5s",
    positional=(Duration("1ms", "1h"),),
    optional_positional=True,
    clauses=frozen_map({"first_token": Duration("1ms", "1h"), "connect": Duration("1ms", "5m")}),
)
_MODULES = AttributeSpec(
    "modules",
    "The route's modules, run in the order written.",
    "modules [trace, audit, auth, cache(ttl: 10m)]",
    positional=(MODULE_LIST,),
)

PROVIDER = BlockSpec(
    kind="provider",
    doc="Where requests can go: an adapter kind, an address and a key.",
    label="name",
    label_words="a name, e.g. `provider openai { … }`",
    attributes=frozen_map(
        {
            "kind": AttributeSpec(
                "kind",
                "The adapter: openai, azure, anthropic, gemini, mock or a preset.",
                "kind openai",
                positional=(Word(),),
                required=True,
            ),
            "base_url": AttributeSpec(
                "base_url",
                "The API's base URL (defaults per kind).",
                'base_url "https://api.openai.com/v1"',
                positional=(Url(),),
            ),
            "api_key": AttributeSpec(
                "api_key",
                '`passthrough` (the caller\'s key), `none` or env("NAME").',
                'api_key env("OPENAI_API_KEY")',
                positional=(Secret(),),
            ),
            "timeout": AttributeSpec(
                "timeout",
                "Default total time for one request to this provider.",
                "timeout 60s",
                positional=(Duration("1ms", "1h"),),
            ),
            "connect_timeout": AttributeSpec(
                "connect_timeout",
                "Time allowed to open a connection.",
                "connect_timeout 5s",
                positional=(Duration("1ms", "5m"),),
            ),
            "max_connections": AttributeSpec(
                "max_connections",
                "Size of the connection pool.",
                "max_connections 100",
                positional=(Integer(1, 100_000),),
            ),
            "header": AttributeSpec(
                "header",
                "An extra header sent with every request (repeatable).",
                'header "X-Team" "search"',
                positional=(Text(), Text(allow_env=True)),
                repeatable=True,
            ),
        }
    ),
)

ROUTE = BlockSpec(
    kind="route",
    doc="Which requests go where: path and model patterns, a provider chain, modules, caps.",
    label="name",
    label_words="a name, e.g. `route chat { … }`",
    attributes=frozen_map(
        {
            "path": AttributeSpec(
                "path",
                "The request path(s) this route serves.",
                "path /v1/chat/completions",
                variadic=UrlPath(),
                required=True,
            ),
            "models": AttributeSpec(
                "models",
                "Patterns on the requested model (`*` any characters); default all.",
                'models "gpt-4o*", "gpt-4.1*"',
                variadic=Glob(),
            ),
            "chain": AttributeSpec(
                "chain",
                "Providers in failover order (`->`), load-balanced tiers (`|`).",
                'chain openai -> claude(model: "claude-3-5-haiku-latest")',
                positional=(CHAIN,),
                required=True,
            ),
            "failover": _FAILOVER,
            "retry": _RETRY,
            "timeout": _TIMEOUT,
            "cap": AttributeSpec(
                "cap",
                "Spend caps, enforced by the `cost_cap` module.",
                "cap daily $25 monthly $400 per project",
                clauses=frozen_map(
                    {
                        "daily": Money(),
                        "monthly": Money(),
                        "per": Choice("project", "key", "route", what="cap scope"),
                    }
                ),
                needs_one_clause=True,
            ),
            "modules": _MODULES,
        }
    ),
)

PRICE = BlockSpec(
    kind="price",
    doc="The price of a model (overrides the shipped table; a prefix prices dated ids too).",
    label="string",
    label_words='a model id in quotes, e.g. `price "gpt-4o-mini" { … }`',
    attributes=frozen_map(
        {
            "input": AttributeSpec(
                "input",
                "Price of prompt tokens.",
                "input $0.15/1M",
                positional=(Price(),),
                required=True,
            ),
            "output": AttributeSpec(
                "output",
                "Price of completion tokens.",
                "output $0.60/1M",
                positional=(Price(),),
                required=True,
            ),
            "cached": AttributeSpec(
                "cached",
                "Price of cached prompt tokens (default: the input price).",
                "cached $0.075/1M",
                positional=(Price(),),
            ),
        }
    ),
    several_per_line=True,
)

DEFAULTS = BlockSpec(
    kind="defaults",
    doc="Settings every route gets unless it sets its own.",
    label=None,
    label_words="no name",
    attributes=frozen_map(
        {"modules": _MODULES, "failover": _FAILOVER, "retry": _RETRY, "timeout": _TIMEOUT}
    ),
)

BLOCKS = frozen_map({b.kind: b for b in (PROVIDER, ROUTE, PRICE, DEFAULTS)})
