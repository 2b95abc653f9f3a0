"""The module registry: one file per module, one line here per module.

Each module file declares ``SPEC`` (a :class:`~stockyard.modules.base.ModuleDefinition`: its
parameters and roles, which the checker and the runtime toggles API validate against, and the
factory the gateway builds it with). Adding a module is its file plus its name in
:data:`NAMES`; grammar/README.md ("Extending Stockyard") walks through one.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from types import MappingProxyType

from .base import ModuleDefinition

# The order is the order of the reference in grammar/README.md and of GET /api/proxy/modules.
NAMES = (
    "auth",
    "ip_allow",
    "rate_limit",
    "prompt_guard",
    "redact",
    "model_alias",
    "max_tokens",
    "cost_cap",
    "cache",
    "headers",
    "trace",
    "audit",
)


def _load(name: str) -> ModuleDefinition:
    spec = import_module(f"{__name__}.{name}").SPEC
    if not isinstance(spec, ModuleDefinition) or spec.name != name:
        raise TypeError(
            f"stockyard/modules/{name}.py must declare SPEC = ModuleDefinition(name={name!r}, …)"
        )
    return spec


REGISTRY: Mapping[str, ModuleDefinition] = MappingProxyType({name: _load(name) for name in NAMES})
