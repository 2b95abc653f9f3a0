"""``ip_allow``: admit callers by IP network (CIDR allow and deny lists)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dsl.schema import REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import INVALID_VALUE, ListOf, Network, ValueProblem


def _validate(params: Mapping[str, Any]) -> list[ValueProblem]:
    if not params.get("allow") and not params.get("deny"):
        return [
            ValueProblem(
                INVALID_VALUE,
                "`ip_allow` needs `allow` or `deny` networks",
                None,
                help='for example ip_allow(allow: ["10.0.0.0/8"])',
            )
        ]
    return []


SPEC = ModuleSpec(
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
)
