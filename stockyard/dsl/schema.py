"""Schemas: what each block, attribute, module and provider kind accepts.

The checker reads these; it holds no knowledge of individual modules or adapters. Modules
declare a :class:`ModuleSpec` in their own file (``stockyard/modules/``), provider adapters a
:class:`ProviderKind` (``stockyard/providers/``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .value_types import ValueProblem, ValueType

_REQUIRED = object()


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Param:
    """A module parameter: its type, default (absent → required) and one line of doc."""

    type: ValueType
    doc: str
    default: Any = _REQUIRED
    example: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


# Roles let the checker reason about module order without knowing modules by name.
AUTHENTICATES = "authenticates"  # establishes who the caller is
SERVES = "serves"  # may answer without calling a provider (e.g. a cache)
RECORDS = "records"  # writes what happened (trace, audit)
REJECTS = "rejects"  # may refuse a request


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    doc: str
    params: Mapping[str, Param] = field(default_factory=frozen_map)
    roles: frozenset[str] = frozenset()
    # Extra validation across parameters; returns problems (with spans where known).
    validate: Callable[[Mapping[str, Any]], list[ValueProblem]] | None = None
    # Whether this module, configured with these params, needs to know the caller's key.
    needs_key: Callable[[Mapping[str, Any]], bool] | None = None
    # For a module with the REJECTS role: whether, so configured, it can refuse a request
    # (`max_tokens(action: clamp)` cannot). Absent: it can.
    rejects_when: Callable[[Mapping[str, Any]], bool] | None = None
    # Whether this module, configured with these params, sends a requested model upstream
    # under another name (requested -> served): prices are checked for the served name.
    renames_models: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None


@dataclass(frozen=True)
class AttributeSpec:
    """``name positional… clause value…``. E.g. ``timeout 30s first_token 5s``."""

    name: str
    doc: str
    example: str
    positional: tuple[ValueType, ...] = ()
    optional_positional: bool = False  # all positionals may be omitted
    variadic: ValueType | None = None  # any number of further values of this type
    clauses: Mapping[str, ValueType] = field(default_factory=frozen_map)
    required: bool = False
    repeatable: bool = False
    needs_one_clause: bool = False  # at least one clause must be present
    exclusive: bool = False  # positionals and clauses are alternatives (`failover off` | `on …`)

    @property
    def min_positional(self) -> int:
        if self.optional_positional:
            return 0
        return len(self.positional) + (1 if self.variadic and not self.positional else 0)


@dataclass(frozen=True)
class BlockSpec:
    kind: str
    doc: str
    label: str | None  # "name", "string" or None (no label)
    label_words: str
    attributes: Mapping[str, AttributeSpec]
    several_per_line: bool = False  # `input $1/1M output $2/1M` on one line


@dataclass(frozen=True)
class ProviderKind:
    """A provider adapter kind (``kind openai``): its defaults and extra attributes."""

    name: str
    doc: str
    protocol: str  # the wire protocol / adapter: openai, azure, anthropic, gemini, mock
    base_url: str | None
    attributes: Mapping[str, AttributeSpec] = field(default_factory=frozen_map)
    key_env: str | None = None  # the conventional environment variable for its key
    # Whether a provider of this kind must have an address: true unless the kind answers by
    # itself (the offline mock). Without a default `base_url`, the file must give one.
    needs_base_url: bool = True
