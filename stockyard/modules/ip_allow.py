"""``ip_allow``: admit callers by IP network (CIDR allow and deny lists)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import REJECTS, Param, frozen_map
from ..dsl.value_types import INVALID_VALUE, ListOf, Network, ValueProblem
from ..exceptions import PermissionDenied
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params


def _validate(params: Mapping[str, Any]) -> list[ValueProblem]:
    if not params.get("allow") and not params.get("deny"):
        return [
            ValueProblem(
                INVALID_VALUE,
                "`ip_allow` needs `allow` or `deny` networks",
                None,
                "no networks given",
                help='for example `ip_allow(allow: ["10.0.0.0/8"])`',
            )
        ]
    return []


def create(params: Params, services: ModuleServices) -> Module:
    import ipaddress

    allow = [ipaddress.ip_network(n) for n in params["allow"]]
    deny = [ipaddress.ip_network(n) for n in params["deny"]]

    def admitted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in deny):
            return False
        return not allow or any(ip in net for net in allow)

    async def ip_allow(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        if not admitted(ctx.client_ip):
            ctx.blocked_by = "ip_allow"
            raise PermissionDenied(
                f"requests from {ctx.client_ip or 'this address'} are not allowed",
                code="ip_not_allowed",
            )
        return await call_next(ctx)

    return ip_allow


SPEC = ModuleDefinition(
    name="ip_allow",
    doc="Admit only callers whose address is in `allow` and not in `deny`.",
    params=frozen_map(
        {
            "allow": Param(
                ListOf(Network()),
                "Networks admitted (empty: all).",
                default=(),
                example='["10.0.0.0/8", "127.0.0.1"]',
            ),
            "deny": Param(
                ListOf(Network()),
                "Networks refused, checked first.",
                default=(),
                example='["10.6.0.0/16"]',
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    validate=_validate,
    create=create,
)
