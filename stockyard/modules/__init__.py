"""The module registry: one file per module, one line here per module.

Each module file declares ``SPEC`` (a :class:`~stockyard.dsl.schema.ModuleSpec`: its parameters
and roles). The checker and the runtime-override API validate against the same spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..dsl.schema import ModuleSpec
from . import (
    audit,
    auth,
    cache,
    cost_cap,
    headers,
    ip_allow,
    max_tokens,
    model_alias,
    prompt_guard,
    rate_limit,
    redact,
    trace,
)

REGISTRY: Mapping[str, ModuleSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            auth.SPEC,
            ip_allow.SPEC,
            rate_limit.SPEC,
            prompt_guard.SPEC,
            redact.SPEC,
            model_alias.SPEC,
            max_tokens.SPEC,
            cost_cap.SPEC,
            cache.SPEC,
            headers.SPEC,
            trace.SPEC,
            audit.SPEC,
        )
    }
)
