"""Admin authentication: ``Authorization: Bearer KEY`` or ``X-Admin-Key: KEY``, compared in
constant time; without a configured key only loopback callers are served."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import g, jsonify, request


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def api_error(status: int, message: str, code: str | None = None) -> Any:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
    }.get(status, "api_error")
    return jsonify(
        {"error": {"message": message, "type": kind, "code": code, "param": None}}
    ), status


View = Callable[..., Awaitable[Any]]
"""An admin endpoint: Quart passes the URL's parts as keyword arguments."""

Guard = Callable[[View], View]
"""Wraps a view so that only admin callers reach it (see :func:`admin_guard`)."""


def admin_guard(admin_key: str | None) -> Guard:
    def decorate(view: View) -> View:
        @wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if admin_key is None:
                if not is_loopback(request.remote_addr):
                    return api_error(
                        403, "the admin API serves loopback callers only (no admin key is set)"
                    )
                g.actor = "admin:loopback"
                return await view(*args, **kwargs)
            given = request.headers.get("x-admin-key") or ""
            auth = request.headers.get("authorization", "")
            if not given and auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
            if not given:
                return api_error(
                    401, "admin key required: send Authorization: Bearer <key> or X-Admin-Key"
                )
            if not hmac.compare_digest(given.encode(), admin_key.encode()):
                return api_error(403, "wrong admin key")
            g.actor = "admin"
            return await view(*args, **kwargs)

        return guarded

    return decorate
