"""What each grammar rule becomes in the AST, called as the rule reduces.

Every token is kept (``keep_all_tokens``), punctuation included, so that a node's span runs from
its first child to its last, as Lark's own positions would. The methods are Lark transformer
callbacks: :class:`~stockyard.dsl.lalr.TableParser` calls them, and so can Lark's ``parse``
(tests/test_lalr.py compares the two). A 10,000-line pipeline reduces about 100,000 of them, so
they are written for speed: no generator expressions, spans built inline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lark import Token, Transformer

from ..core.span import Span
from .syntax import Argument, Attribute, Block, Call, Chain, Ident, ListValue, Literal, Tier

# What Span(...) does, without the Python-level __new__ a named tuple adds: 136,000 spans for
# 10,000 lines.
_new_span = tuple.__new__

# Lark's Token, for the class checks below. Lark types a token's positions as optional; every token
# a lexer yields has them, so the checks compare with an untyped alias rather than narrowing a
# child to `Token` (a cast per node would cost a call on the hot path).
_TOKEN: Any = Token


class _Positioned(Protocol):
    """A token as lexed: its text and its positions."""

    value: str
    line: int
    column: int
    end_line: int
    end_column: int


def _literal(kind: str) -> Callable[[AstBuilder, list[_Positioned]], Literal]:
    def make(self: AstBuilder, children: list[_Positioned]) -> Literal:
        t = children[0]
        o = self.offset
        span = _new_span(Span, (self.file, t.line + o, t.column, t.end_line + o, t.end_column))
        return Literal(kind, t.value, span)

    return make


class AstBuilder(Transformer):  # type: ignore[type-arg]  # its methods type their own children
    """Builds the nodes of one text at a time: ``file`` and ``offset`` (lines before the text,
    when a broken file is parsed block by block) are set before each parse."""

    def __init__(self) -> None:
        super().__init__()
        self.file = ""
        self.offset = 0

    def _span(self, first: Any, last: Any) -> Span:
        o = self.offset
        if first.__class__ is _TOKEN:
            line, column = first.line + o, first.column
        else:
            start = first.span
            line, column = start.line, start.column
        if last.__class__ is _TOKEN:
            return _new_span(Span, (self.file, line, column, last.end_line + o, last.end_column))
        end = last.span
        return _new_span(Span, (self.file, line, column, end.end_line, end.end_column))

    def _ident(self, t: _Positioned) -> Ident:
        o = self.offset
        span = _new_span(Span, (self.file, t.line + o, t.column, t.end_line + o, t.end_column))
        return Ident(t.value, span)

    def start(self, children: list[Any]) -> list[Block]:
        return [c for c in children if c.__class__ is Block]

    def block(self, children: list[Any]) -> Block:
        first = children[0]
        kind = self._ident(first)
        label: Ident | Literal | None = None
        second = children[1]
        if second.__class__ is _TOKEN and second.type in ("NAME", "STRING"):
            label = self._ident(second)
            if second.type == "STRING":
                label = Literal("string", label.name, label.span)
        header = kind.span.to(label.span) if label else kind.span
        attributes = tuple([a for a in children if a.__class__ is Attribute])
        return Block(kind, label, attributes, self._span(first, children[-1]), header)

    def attribute(self, children: list[Any]) -> Attribute:
        first = children[0]
        values = tuple([c for c in children[1:] if c.__class__ is not Token])
        return Attribute(self._ident(first), values, self._span(first, children[-1]))

    def chain(self, children: list[Any]) -> Chain:
        steps = tuple([c for c in children if c.__class__ is not Token])
        return Chain(steps, self._span(children[0], children[-1]))

    def balanced(self, children: list[Any]) -> Tier:
        members = tuple([c for c in children if c.__class__ is not Token])
        return Tier(members, self._span(children[0], children[-1]))

    def ident(self, children: list[_Positioned]) -> Ident:
        return self._ident(children[0])

    def call(self, children: list[Any]) -> Call:
        first = children[0]
        arguments = tuple([c for c in children if c.__class__ is Argument])
        return Call(self._ident(first), arguments, self._span(first, children[-1]))

    def named_argument(self, children: list[Any]) -> Argument:
        first, value = children[0], children[-1]
        return Argument(self._ident(first), value, self._span(first, value))

    def positional_argument(self, children: list[Any]) -> Argument:
        value = children[0]
        return Argument(None, value, value.span)

    def list(self, children: list[Any]) -> ListValue:
        items = tuple([c for c in children if c.__class__ is not Token])
        return ListValue(items, self._span(children[0], children[-1]))

    string = _literal("string")
    number = _literal("number")
    duration = _literal("duration")
    money = _literal("money")
    rate = _literal("rate")
    size = _literal("size")
    status = _literal("status")
    path = _literal("path")
