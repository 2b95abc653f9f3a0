"""``rate_limit``: token buckets for requests and tokens per key, project, route or IP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dsl.schema import REJECTS, ModuleSpec, Param, frozen_map
from ..dsl.types import INVALID_VALUE, Choice, Rate, ValueProblem


def _validate(params: Mapping[str, Any]) -> list[ValueProblem]:
    if params.get("requests") is None and params.get("tokens") is None:
        return [
            ValueProblem(
                INVALID_VALUE,
                "`rate_limit` needs `requests` or `tokens`",
                None,
                "no limit set",
                help="for example `rate_limit(requests: 60/min)`",
            )
        ]
    return []


SPEC = ModuleSpec(
    name="rate_limit",
    doc="Limit requests and tokens per minute; over the limit answers 429 with Retry-After.",
    params=frozen_map(
        {
            "requests": Param(
                Rate(), "Requests allowed per window.", default=None, example="60/min"
            ),
            "tokens": Param(
                Rate(),
                "Prompt + completion tokens allowed per window.",
                default=None,
                example="100k/min",
            ),
            "per": Param(
                Choice("key", "project", "route", "ip", what="scope"),
                "What each bucket belongs to.",
                default="project",
                example="key",
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    validate=_validate,
    needs_key=lambda params: params.get("per") == "key",
)
