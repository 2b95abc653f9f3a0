"""Every error Stockyard raises, in one hierarchy::

StockyardError
├── ConfigError            pipelines failed to check (carries the diagnostics)
├── GatewayError           an error a client sees, in the OpenAI error shape
│   ├── InvalidRequest         400
│   ├── AuthenticationFailed   401
│   ├── PermissionDenied       403
│   ├── NoRoute                404
│   ├── PayloadTooLarge        413
│   ├── RateLimited            429
│   ├── BadGateway             502  the providers failed (the caller's view of it)
│   ├── ServiceUnavailable     503
│   └── GatewayTimeout         504  the providers did not answer in time
└── UpstreamFailure        one failed attempt at a provider (providers -> dispatcher; decides
                           retries and failover; the dispatcher turns the last into a
                           GatewayError)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StockyardError(Exception):
    """Base class of every Stockyard error."""


class ConfigError(StockyardError):
    def __init__(self, message: str, diagnostics: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.diagnostics = tuple(diagnostics)


class GatewayError(StockyardError):
    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NoRoute(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "no_route"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class BadGateway(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_provider_available"


class GatewayTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class UpstreamFailure(StockyardError):
    """One attempt at a provider failed. ``kind`` is ``status``, ``timeout`` or ``connect``."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.retry_after = retry_after

    def matches(self, conditions: frozenset[str]) -> bool:
        """Whether this failure is one the route fails over on."""
        if self.kind in ("timeout", "connect"):
            return self.kind in conditions
        if self.status is None:
            return False
        return str(self.status) in conditions or f"{self.status // 100}xx" in conditions

    def __str__(self) -> str:
        return f"{self.kind}{f' {self.status}' if self.status else ''}: {self.message}"
