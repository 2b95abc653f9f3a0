"""The per-request context every module and the dispatcher share, and the phases of a request's
end in which a module may take part (:class:`Phase`; the whole sequence, and who runs it, is
described in :mod:`stockyard.runtime.end`)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum
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


class Phase(IntEnum):
    """The steps of a request's end that modules take part in, in the order they run.

    The runtime's own steps come around them: usage and cost are settled and spend is counted
    before :attr:`SETTLE`; metrics are counted after :attr:`AUDIT`.
    """

    SETTLE = 1  # give back or correct what was held at admission (cost_cap, rate_limit)
    KEEP = 2  # keep the answer for later (cache): it carries the settled cost
    TRACE = 3  # the trace row: shows the settled cost and what SETTLE noted
    AUDIT = 4  # the ledger event


EndHook = Callable[["RequestContext"], Awaitable[None]]
"""Run once when the request has ended, in its :class:`Phase`; may read the final context."""


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
    # Findings for the trace, shown as they are: nothing reads them to decide anything.
    notes: dict[str, Any] = field(default_factory=dict)
    blocked_by: str | None = None  # the module that refused the request (trace: notes.blocked_by)
    disconnected: bool = False  # the caller went away first (trace: notes.disconnected)
    ended_ms: float | None = None  # after the last byte: when the end-of-request sequence began
    response_headers: dict[str, str] = field(default_factory=dict)
    # (phase, hook) in the order modules asked (:meth:`on_end`); the runtime orders by phase.
    end_hooks: list[tuple[Phase, EndHook]] = field(default_factory=list)
    response_body: bytes | None = None  # kept only when a recorder asks for bodies
    keep_bodies: bool = False
    authorization_consumed: bool = False  # the Authorization header held a gateway key
    # Headers for the upstream request, lower-case names; None removes a header.
    upstream_headers: dict[str, str | None] = field(default_factory=dict)

    def on_end(self, phase: Phase, hook: EndHook) -> None:
        """Run ``hook`` once when the request has ended, in ``phase`` (after the last byte, an
        error, or the caller's disconnect). A failing hook is logged; the others still run."""
        self.end_hooks.append((phase, hook))

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

    def duration_ms(self) -> float:
        """First byte in to last byte out: the time recording took is not the request's."""
        return self.ended_ms if self.ended_ms is not None else self.elapsed_ms()
