"""The compiled form of all ``.pipe`` files: an immutable :class:`Generation`.

A request reads the current generation once and uses it to the end, so nothing here changes
after compilation, and it is pure data: the path index is built here, but model patterns stay
patterns (the gateway's router, :mod:`stockyard.runtime.router`, compiles them at activation;
``stockyard check`` never needs them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .values import EnvRef

PASSTHROUGH = "passthrough"  # ProviderSpec.api_key: forward the caller's own key


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    kind: str
    protocol: str
    base_url: str | EnvRef | None
    api_key: str | EnvRef | None  # PASSTHROUGH, an env reference, a literal, or None (no key)
    timeout: float | None
    connect_timeout: float | None
    max_connections: int | None
    headers: tuple[tuple[str, str | EnvRef], ...]
    options: Mapping[str, Any]  # kind-specific attributes, e.g. azure's api_version
    source: str


@dataclass(frozen=True, slots=True)
class HopSpec:
    provider: str
    model: str | None  # rewrite the requested model for this hop
    weight: int


@dataclass(frozen=True, slots=True)
class TierSpec:
    """Providers that share traffic by weight; a chain is a sequence of tiers."""

    hops: tuple[HopSpec, ...]

    @property
    def total_weight(self) -> int:
        return sum(h.weight for h in self.hops)


@dataclass(frozen=True, slots=True)
class Policy:
    failover_on: frozenset[str]  # "5xx", "4xx", "429", "timeout", "connect"
    retries: int
    backoff: float
    max_backoff: float
    timeout: float | None
    first_token_timeout: float | None
    connect_timeout: float | None


@dataclass(frozen=True, slots=True)
class CapSpec:
    daily: Decimal | None
    monthly: Decimal | None
    per: str  # project | key | route


@dataclass(frozen=True, slots=True)
class ModuleConfig:
    name: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """Dollars per one million tokens."""

    model: str
    input: Decimal
    output: Decimal
    cached: Decimal
    source: str


def glob_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One anchored regex for a route's model patterns (``*`` any run, ``?`` one character)."""
    if not patterns or "*" in patterns:
        return None
    parts = []
    for pattern in patterns:
        parts.append(
            "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        )
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    paths: tuple[str, ...]
    models: tuple[str, ...]  # empty: every model
    chain: tuple[TierSpec, ...]
    policy: Policy
    cap: CapSpec | None
    modules: tuple[ModuleConfig, ...]
    source: str

    def matches_model(self, model: str) -> bool:
        """Whether ``model`` matches the route's patterns. For tools and tests: it builds the
        pattern on every call (from ``re``'s cache at best); the gateway routes with
        :class:`stockyard.runtime.router.Router`, which compiles each route's once."""
        regex = glob_regex(self.models)
        return regex is None or regex.match(model) is not None

    def chain_text(self) -> str:
        def hop(h: HopSpec) -> str:
            args = []
            if h.model:
                args.append(f'model: "{h.model}"')
            if h.weight != 1:
                args.append(f"weight: {h.weight}")
            return h.provider + (f"({', '.join(args)})" if args else "")

        return " -> ".join(" | ".join(hop(h) for h in tier.hops) for tier in self.chain)

    def to_json(self) -> dict[str, Any]:
        """The route as the admin API (``GET /api/proxy/routes``) and ``stockyard routes
        --format json`` show it: ``chain`` is the tiers in failover order, each a list of hops;
        ``chain_text`` the same as written in a ``.pipe`` file."""
        return {
            "name": self.name,
            "paths": list(self.paths),
            "models": list(self.models),
            "chain": [
                [{"provider": h.provider, "model": h.model, "weight": h.weight} for h in t.hops]
                for t in self.chain
            ],
            "chain_text": self.chain_text(),
            "modules": [m.name for m in self.modules],
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Generation:
    routes: tuple[RouteSpec, ...]
    providers: Mapping[str, ProviderSpec]
    prices: Mapping[str, PriceSpec]
    source_hash: str
    files: tuple[str, ...]
    routes_by_path: Mapping[str, tuple[RouteSpec, ...]] = field(compare=False, repr=False)

    def route_for(self, path: str, model: str) -> RouteSpec | None:
        """The first route, in declaration order, serving ``path`` whose patterns match ``model``
        (for tools and tests: see :meth:`RouteSpec.matches_model`)."""
        for route in self.routes_by_path.get(path, ()):
            if route.matches_model(model):
                return route
        return None
