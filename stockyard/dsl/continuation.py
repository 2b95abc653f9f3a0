"""The line-continuation rule, and what the lexer remembers for error messages.

A line break ends an attribute, except inside ``(`` or ``[`` brackets and after a token that
continues the value (``,``, ``->``, ``|``, ``(``, ``[``, ``:``); a ``\\`` before the line break
joins the lines too (the grammar ignores it). The fast lexer (:mod:`.lexer`) applies the rule
inline; :class:`ContinuationPostLex` applies it to the tokens of Lark's own lexer, for the
fallback parser (:mod:`.parser`) when the fast one cannot be built. This module uses only Lark's
public API, so that it keeps working when a Lark release changes its internals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache

from lark import Token

from .grammar import terminal_literal

# Tokens after which a line break does not end the attribute: the value goes on. In the order
# the manual and the messages list them.
CONTINUES_LINE_ORDER = ("COMMA", "_ARROW", "_BAR", "LPAR", "LSQB", "COLON")
CONTINUES_LINE = frozenset(CONTINUES_LINE_ORDER)
LINE_JOINER = "\\"  # the grammar's `%ignore /\\\r?\n/`: a backslash at the end of a line
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB"}
CLOSERS = frozenset(OPENERS.values())
NESTING = frozenset({*OPENERS, *CLOSERS, "LBRACE", "RBRACE"})

MAX_NESTING = 32  # brackets inside brackets; real pipelines use three or four


@cache
def line_goes_on() -> tuple[str, ...]:
    """The texts a line may end with to continue its attribute on the next line, as the grammar
    spells those tokens, then the joiner."""
    return (*(terminal_literal(name) for name in CONTINUES_LINE_ORDER), LINE_JOINER)


def line_goes_on_words() -> str:
    """ "`,`, `->`, … or `\\`", for messages."""
    *most, last = (f"`{text}`" for text in line_goes_on())
    return f"{', '.join(most)} or {last}"


class TooDeep(Exception):
    """Brackets nested past :data:`MAX_NESTING`: refused before the recursive tree walk."""

    def __init__(self, token: Token) -> None:
        super().__init__("nesting too deep")
        self.token = token


class TokenMemory:
    """What the lexer saw last, for error messages: ``open_braces`` (each ``{`` with the
    tokens of its header line), ``open_brackets``, ``recent`` (the last two tokens passed on,
    line breaks excluded) and ``line_tokens`` (the current logical line)."""

    def __init__(self) -> None:
        self.open_braces: list[tuple[Token, list[Token]]] = []
        self.open_brackets: list[Token] = []
        self.line_tokens: list[Token] = []
        self._tail: list[Token] = []  # the last two tokens before the current line

    @property
    def last_before_line(self) -> Token | None:
        """The last token passed on before the current logical line."""
        return self._tail[-1] if self._tail else None

    @property
    def recent(self) -> list[Token]:
        return (self._tail + self.line_tokens)[-2:]


class ContinuationPostLex(TokenMemory):
    """A Lark post-lexer (``Lark(..., postlex=...)``): the continuation rule and the memory of
    :class:`TokenMemory` over Lark's own tokens. The same rule as the fast lexer's loop, written
    plainly; tests/test_parser_fallback.py holds the two to the same tokens and diagnostics."""

    always_accept: tuple[str, ...] = ()

    def process(self, stream: Iterable[Token]) -> Iterator[Token]:
        open_braces: list[tuple[Token, list[Token]]] = []
        brackets: list[Token] = []
        line_tokens: list[Token] = []
        self.open_braces, self.open_brackets, self.line_tokens = open_braces, brackets, line_tokens
        self._tail = []
        for token in stream:
            kind = token.type
            if kind == "_NL":
                if brackets or (line_tokens and line_tokens[-1].type in CONTINUES_LINE):
                    continue
                self._tail = (self._tail + line_tokens)[-2:]
                self.line_tokens = line_tokens = []
            elif kind in OPENERS:
                brackets.append(token)
                if len(brackets) > MAX_NESTING:
                    raise TooDeep(token)
            elif kind in CLOSERS:
                if brackets and OPENERS[brackets[-1].type] == kind:
                    brackets.pop()
            elif kind == "LBRACE":
                open_braces.append((token, list(line_tokens)))
                brackets.clear()
            elif kind == "RBRACE":
                if open_braces:
                    open_braces.pop()
                brackets.clear()
            if kind != "_NL":
                line_tokens.append(token)
            yield token
