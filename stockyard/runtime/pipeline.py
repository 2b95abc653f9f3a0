"""Put a compiled Generation into service: adapters per provider, the router (each route's model
patterns compiled once) and, per route, the module onion wrapped once around the dispatcher.
Requests then only call ``router.route_for`` and ``handlers[route]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..core.context import RequestContext
from ..core.generation import Generation, ModuleConfig
from ..core.response import GatewayResponse
from ..exceptions import ConfigError
from ..modules import REGISTRY
from ..modules.base import Handler, Module
from ..pricing import ModelPrice
from ..providers import ADAPTERS
from ..providers.base import Adapter
from .dispatch import Dispatcher
from .records import price_overrides
from .router import Router
from .services import Services
from .validate import validate


@dataclass(frozen=True)
class ActiveGeneration:
    generation: Generation
    router: Router
    handlers: Mapping[str, Handler]
    adapters: Mapping[str, Adapter]
    prices: Mapping[str, ModelPrice]  # `price` blocks as pricing overrides


def _wrap(module: Module, call_next: Handler) -> Handler:
    async def step(ctx: RequestContext) -> GatewayResponse:
        return await module(ctx, call_next)

    return step


def _validated(dispatcher: Handler) -> Handler:
    async def terminal(ctx: RequestContext) -> GatewayResponse:
        validate(ctx)
        return await dispatcher(ctx)

    return terminal


def build_module(config: ModuleConfig, services: Services) -> Module:
    return REGISTRY[config.name].create(config.params, services)


def activate(generation: Generation, services: Services) -> ActiveGeneration:
    """Build adapters and handlers. Raises ConfigError when something cannot be served."""
    adapters: dict[str, Adapter] = {}
    for name, provider in generation.providers.items():
        factory = ADAPTERS.get(provider.protocol)
        if factory is None:
            raise ConfigError(
                f"provider `{name}`: kind `{provider.kind}` ({provider.protocol} protocol) "
                "has no adapter in this version"
            )
        adapters[name] = factory(provider, services.clients)
    handlers: dict[str, Handler] = {}
    for route in generation.routes:
        handler: Handler = _validated(
            Dispatcher(route, generation.providers, adapters, services.breakers)
        )
        for config in reversed(route.modules):
            # runtime toggles are applied here, not per request
            enabled, params, _source = services.toggles.effective(route.name, config)
            if not enabled:
                continue
            config = ModuleConfig(config.name, params)
            handler = _wrap(build_module(config, services), handler)
        handlers[route.name] = handler
    return ActiveGeneration(
        generation,
        Router(generation),  # patterns compiled now, not on a route's first request
        MappingProxyType(handlers),
        MappingProxyType(adapters),
        MappingProxyType(price_overrides(generation.prices)),
    )
