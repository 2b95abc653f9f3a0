"""The syntax tree of a ``.pipe`` file: frozen dataclasses, each with its source :class:`Span`.

Values keep their raw source text (``raw``) so diagnostics can quote exactly what was written;
literal meaning (seconds, dollars, …) is decoded by :mod:`stockyard.dsl.literals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..core.span import Span


@dataclass(frozen=True, slots=True)
class Literal:
    """A typed literal: ``kind`` is one of string, number, duration, money, rate, size, status, path."""

    kind: str
    raw: str
    span: Span

    @property
    def text(self) -> str:
        """The value of a string literal without quotes and escapes; the raw text otherwise."""
        if self.kind != "string":
            return self.raw
        return _unescape(self.raw[1:-1])


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Argument:
    """``name: value`` or a bare positional ``value`` inside a call."""

    name: Ident | None
    value: Value
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """``name(arg, key: value)`` — a module with parameters, a chain hop, ``env("X")``."""

    name: Ident
    arguments: tuple[Argument, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Tier:
    """``a | b | c``: alternatives balanced by weight. Members are normally Ident or Call."""

    members: tuple[Value, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Chain:
    """``a -> b -> c``: failover order. Each step is a Tier or a single value."""

    steps: tuple[Value, ...]
    span: Span


Value = Union[Literal, Ident, Call, ListValue, Tier, Chain]


@dataclass(frozen=True, slots=True)
class Attribute:
    name: Ident
    values: tuple[Value, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Block:
    """``kind label { attributes }`` — ``label`` is an Ident, a string Literal, or None."""

    kind: Ident
    label: Ident | Literal | None
    attributes: tuple[Attribute, ...]
    span: Span
    header: Span
    # Attributes on lines skipped for a syntax error (already reported): they are written, so
    # they are not "missing", but their values are unknown.
    broken: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        """Whether an attribute ``name`` is written, valid or not."""
        return name in self.broken or any(a.name.name == name for a in self.attributes)

    @property
    def name(self) -> str | None:
        if self.label is None:
            return None
        return self.label.name if isinstance(self.label, Ident) else self.label.text


@dataclass(frozen=True, slots=True)
class BrokenBlock:
    """A block that did not parse: what its header says, so that references to it are not
    reported again as unknown (the syntax error is the one diagnostic)."""

    kind: str
    name: str | None
    header: Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    text: str
    blocks: tuple[Block, ...]
    broken: tuple[BrokenBlock, ...] = ()


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


def describe(value: Value) -> str:
    """A few words naming what kind of value this is, for messages."""
    if isinstance(value, Literal):
        return {
            "string": "a string",
            "number": "a number",
            "duration": "a duration",
            "money": "an amount of money",
            "rate": "a rate",
            "size": "a size",
            "status": "a status class",
            "path": "a path",
        }[value.kind]
    if isinstance(value, Ident):
        return f"the name `{value.name}`"
    if isinstance(value, Call):
        return f"a call `{value.name.name}(…)`"
    if isinstance(value, ListValue):
        return "a list"
    if isinstance(value, Tier):
        return "a load-balanced tier `a | b`"
    return "a failover chain `a -> b`"
