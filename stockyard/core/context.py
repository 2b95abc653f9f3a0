"""The per-request context every module and the dispatcher share."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .generation import Generation, RouteSpec
from .usage import Usage


def new_trace_id() -> str:
    """Time-ordered, unique: 12 hex digits of milliseconds + 12 random."""
    return f"{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    status: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    outcome: str = "error"  # ok | error | skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class RequestContext:
    id: str
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    client_ip: str
    raw_body: bytes
    body: dict[str, Any]
    generation: Generation
    route: RouteSpec
    model: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    project: str = "default"
    key_id: str | None = None
    body_changed: bool = False  # a module edited `body`: re-serialise before sending
    served_model: str | None = None
    provider: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None
    status: int = 0
    error: str | None = None
    upstream_ms: float = 0.0  # time spent waiting on providers, for the overhead header
    overhead_ms: float | None = None  # the gateway's own time, up to the response head
    first_token_ms: float | None = None
    cache: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # module findings for the trace
    response_headers: dict[str, str] = field(default_factory=dict)
    # Called once when the request has ended (trace, audit): registered by modules.
    recorders: list[Callable[[RequestContext], Awaitable[None]]] = field(default_factory=list)
    response_body: bytes | None = None  # kept only when a recorder asks for bodies
    keep_bodies: bool = False
    authorization_consumed: bool = False  # the Authorization header held a gateway key
    # Headers for the upstream request, lower-case names; None removes a header.
    upstream_headers: dict[str, str | None] = field(default_factory=dict)

    def set_body(self, body: dict[str, Any]) -> None:
        self.body = body
        self.body_changed = True

    @property
    def caller_key(self) -> str | None:
        """The caller's bearer token (for passthrough); never logged or recorded."""
        auth = self.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and not self.authorization_consumed:
            return auth[7:].strip() or None
        return self.headers.get("x-api-key") or self.headers.get("api-key") or None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
