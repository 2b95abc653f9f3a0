"""The module registry: one file per module, one line here per module.

Each module file declares ``SPEC`` (a :class:`~stockyard.modules.base.ModuleDefinition`: its
parameters and roles, which the checker and the runtime-override API validate against, and the
factory the gateway builds it with).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
from .base import ModuleDefinition

REGISTRY: Mapping[str, ModuleDefinition] = MappingProxyType(
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
