"""What a module is, for the runtime: a factory that turns checked parameters and the gateway's
services into an onion layer ``async (ctx, call_next) -> response``.

A module that must act when the request has ended (settle what it reserved, keep the answer,
record it) declares a hook for that phase while it handles the request —
``ctx.on_end(Phase.SETTLE, hook)`` — and the runtime runs it in its place in the one
end-of-request sequence (:mod:`stockyard.runtime.end`), after the last byte of a stream too.
Code after ``call_next`` runs before the answer is sent, so it is only for rewriting it.

The language knows a module by its :class:`~stockyard.dsl.schema.ModuleSpec` (parameters,
roles); :class:`ModuleDefinition` adds the factory. A module file declares one as ``SPEC``, and
``stockyard/modules/__init__.py`` lists it in :data:`~stockyard.modules.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import ModuleSpec

if TYPE_CHECKING:  # the store loads aiosqlite: `stockyard check` never needs it
    from ..keys import KeyRing
    from ..store.database import Store

T = TypeVar("T")

Params = Mapping[str, Any]
"""A module's parameters, checked and typed by its spec (defaults filled in)."""

Handler = Callable[[RequestContext], Awaitable[GatewayResponse]]
"""The rest of the pipeline: the next module, or finally the provider chain."""

Module = Callable[[RequestContext, Handler], Awaitable[GatewayResponse]]
"""One onion layer. It short-circuits by not calling ``call_next``."""


class ModuleServices(Protocol):
    """What a module may use of the gateway's long-lived services (they outlive reloads)."""

    @property
    def store(self) -> Store: ...

    @property
    def keys(self) -> KeyRing: ...

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """The module's state that must survive reloads, made by ``factory`` on first use."""
        ...


ModuleFactory = Callable[[Params, ModuleServices], Module]


@dataclass(frozen=True, kw_only=True)
class ModuleDefinition(ModuleSpec):
    """A module's spec and the factory that builds it, once per route per generation."""

    create: ModuleFactory = field(compare=False)
