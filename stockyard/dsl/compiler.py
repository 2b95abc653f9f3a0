"""Compile a checked :class:`~.checker.Program` into an immutable :class:`~.generation.Generation`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..core.generation import (
    PASSTHROUGH,
    CapSpec,
    Generation,
    HopSpec,
    ModuleConfig,
    Policy,
    PriceSpec,
    ProviderSpec,
    RouteSpec,
    TierSpec,
)
from .blocks import DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF
from .checker import Program, ProviderDecl, RouteDecl
from .interpret import AttrValue, BlockValues
from .schema import frozen_map

DEFAULT_FAILOVER = frozenset({"5xx", "429", "timeout", "connect"})


def source_hash(sources: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for path, text in sorted(sources):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def compile_program(program: Program) -> Generation:
    """Build the generation. Only call on a program whose check reported no errors."""
    providers = {name: _provider(decl) for name, decl in program.providers.items()}
    routes = tuple(_route(r, program) for r in program.routes)
    by_path: dict[str, list[RouteSpec]] = {}
    for route in routes:
        for path in route.paths:
            by_path.setdefault(path, []).append(route)
    prices = {model: _price(model, values) for model, values in program.prices.items()}
    return Generation(
        routes=routes,
        providers=frozen_map(providers),
        prices=frozen_map(prices),
        source_hash=source_hash((f.path, f.text) for f in program.files),
        files=tuple(f.path for f in program.files),
        routes_by_path=frozen_map({p: tuple(rs) for p, rs in by_path.items()}),
    )


def _first(values: BlockValues | None, name: str, default: Any = None) -> Any:
    """The attribute's first value, or ``default``: of the type its schema gives (the checker
    has converted and checked it), hence ``Any``."""
    if values is None:
        return default
    attr = values.get(name)
    return default if attr is None else attr.first


def _provider(decl: ProviderDecl) -> ProviderSpec:
    values = decl.values
    kind = decl.kind
    assert kind is not None
    api_key_attr = values.get("api_key")
    api_key = api_key_attr.first if api_key_attr is not None else PASSTHROUGH
    options = {
        name: (attrs[0].first if len(attrs[0].positional) == 1 else attrs[0].positional)
        for name, attrs in values.attributes.items()
        if name in kind.attributes
    }
    return ProviderSpec(
        name=decl.name,
        kind=kind.name,
        protocol=kind.protocol,
        base_url=_first(values, "base_url", kind.base_url),
        api_key=api_key,
        timeout=_first(values, "timeout"),
        connect_timeout=_first(values, "connect_timeout"),
        max_connections=_first(values, "max_connections"),
        headers=tuple(tuple(a.positional) for a in values.attributes.get("header", ())),
        options=frozen_map(options),
        source=str(values.block.header),
    )


def _setting(route: RouteDecl, program: Program, name: str) -> AttrValue | None:
    attr = route.values.get(name)
    if attr is None and program.defaults is not None:
        attr = program.defaults.get(name)
    return attr


def _route(route: RouteDecl, program: Program) -> RouteSpec:
    assert route.chain is not None and route.modules is not None
    values = route.values
    paths_attr = values.get("path")
    assert paths_attr is not None
    models_attr = values.get("models")
    models = tuple(models_attr.positional) if models_attr else ()
    failover = _setting(route, program, "failover")
    if failover is None:
        failover_on = DEFAULT_FAILOVER
    elif failover.first == "off":
        failover_on = frozenset()
    else:
        failover_on = frozenset(failover.clauses.get("on", DEFAULT_FAILOVER))
    retry = _setting(route, program, "retry")
    timeout = _setting(route, program, "timeout")
    policy = Policy(
        failover_on=failover_on,
        retries=retry.first if retry else 0,
        backoff=retry.clauses.get("backoff", DEFAULT_BACKOFF) if retry else DEFAULT_BACKOFF,
        max_backoff=retry.clauses.get("max_backoff", DEFAULT_MAX_BACKOFF)
        if retry
        else DEFAULT_MAX_BACKOFF,
        timeout=timeout.first if timeout else None,
        first_token_timeout=timeout.clauses.get("first_token") if timeout else None,
        connect_timeout=timeout.clauses.get("connect") if timeout else None,
    )
    cap_attr = values.get("cap")
    cap = None
    if cap_attr is not None:
        cap = CapSpec(
            daily=cap_attr.clauses.get("daily"),
            monthly=cap_attr.clauses.get("monthly"),
            per=cap_attr.clauses.get("per", "project"),
        )
    chain = tuple(
        TierSpec(tuple(HopSpec(h.provider, h.model, h.weight) for h in tier))
        for tier in route.chain
    )
    return RouteSpec(
        name=route.name,
        paths=tuple(paths_attr.positional),
        models=models,
        chain=chain,
        policy=policy,
        cap=cap,
        modules=tuple(ModuleConfig(m.name, frozen_map(m.params)) for m in route.modules),
        source=str(values.block.header),
    )


def _price(model: str, values: BlockValues) -> PriceSpec:
    input_price: Decimal = _first(values, "input")
    return PriceSpec(
        model=model,
        input=input_price,
        output=_first(values, "output"),
        cached=_first(values, "cached", input_price),
        source=str(values.block.header),
    )
