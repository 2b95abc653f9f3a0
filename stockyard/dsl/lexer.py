"""The lexer of ``.pipe`` files: Lark's basic lexer, with the scanning loop done in one pass.

Lark's own loop costs about 3 µs a token (a method call, a tuple and a line counter per match,
then a post-lexer generator on top); a 10,000-line pipeline has 180,000 tokens. This class keeps
everything Lark's :class:`~lark.lexer.BasicLexer` decides once per grammar — which terminals
exist, their order, the combined regular expression, which ones are ignored or may span lines,
and, in strict mode, the proof that no two collide — and replaces only the loop. The tokens are
the same, with the same positions, and a character nothing matches raises the same
:class:`~lark.exceptions.UnexpectedCharacters`.

Line continuation (the rule is :mod:`.continuation`'s) is done in the same loop: a line break
inside brackets, or after a token that continues the value (``,``, ``->``, ``|``, ``(``, ``[``,
``:``), is dropped. The loop also remembers the open blocks and brackets and the last tokens, so
that a syntax error can name the block or bracket that was never closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters
from lark.lexer import BasicLexer, LexerState
from lark.utils import TextSlice

from .continuation import (
    CLOSERS,
    CONTINUES_LINE,
    MAX_NESTING,
    NESTING,
    OPENERS,
    TokenMemory,
    TooDeep,
)
from .scanner import BLANKS, FirstCharScanner

__all__ = ["CLOSERS", "CONTINUES_LINE", "MAX_NESTING", "OPENERS", "PipeLexer", "TooDeep"]


class PipeLexer(BasicLexer, TokenMemory):
    """Lark's basic lexer for the pipe grammar with a faster loop and line continuation.

    What the loop saw last is kept on the instance for error messages (:class:`TokenMemory`).
    Built from the ``lexer_conf`` of a Lark parser (or given to ``Lark(lexer=PipeLexer)``).
    """

    __future_interface__ = 2  # Lark calls lex(lexer_state, parser_state) on this class itself

    def __init__(self, conf: LexerConf, comparator: Any = None) -> None:
        BasicLexer.__init__(self, conf, comparator)
        TokenMemory.__init__(self)
        self._scan: FirstCharScanner | None = None

    def prepare(self) -> None:
        """Build the scanner now rather than on the first text, so that a Lark release whose
        internals it no longer understands fails here, where the parser can fall back."""
        if self._scan is None:
            self._scan = self._compile()

    def _compile(self) -> FirstCharScanner:
        scanner = self.scanner
        if len(scanner._mres) != 1 or self.callback:
            # The pipe grammar needs neither; a grammar that does would lex differently here.
            raise AssertionError("the pipe lexer expects one regular expression, no callbacks")
        skip_blanks = any(
            t.name in self.ignore_types and t.pattern.to_regexp() == BLANKS for t in self.terminals
        )
        return FirstCharScanner(list(self.terminals), scanner._mres[0], skip_blanks)

    def tokens(self, text: str) -> Iterator[Token]:
        """The tokens of ``text``, line breaks that continue a value dropped."""
        return self.lex(LexerState(TextSlice(text, 0, len(text))), None)

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        scanner = self.scanner
        if self._scan is None:
            self._scan = self._compile()
        by_char, general = self._scan.by_char.get, self._scan.general
        ignored = self.ignore_types
        multiline = self.newline_types
        new_token = str.__new__
        counter = lexer_state.line_ctr
        text = lexer_state.text.text
        end = lexer_state.text.end
        pos, line, line_start = counter.char_pos, counter.line, counter.line_start_pos

        open_braces: list[tuple[Token, list[Token]]] = []
        brackets: list[Token] = []
        line_tokens: list[Token] = []
        self.open_braces, self.open_brackets, self.line_tokens = open_braces, brackets, line_tokens
        self._tail = []

        while pos < end:
            m = by_char(text[pos], general)(text, pos, end)
            if m is None:
                counter.char_pos, counter.line, counter.line_start_pos = pos, line, line_start
                counter.column = pos - line_start + 1
                raise UnexpectedCharacters(  # type: ignore[no-untyped-call]  # Lark's is untyped
                    text,
                    pos,
                    line,
                    pos - line_start + 1,
                    allowed=scanner.allowed_types - ignored,
                    token_history=self.recent[-1:] or None,
                    state=parser_state,
                    terminals_by_name=self.terminals_by_name,
                )
            kind: str = m.lastgroup  # type: ignore[assignment]  # every alternative is a named group
            start, token_end = m.span(kind)
            pos = m.end()
            start_line, column = line, start - line_start + 1
            if kind in multiline:
                value = m.group(kind)
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = start + value.rindex("\n") + 1
            if kind in ignored:
                continue
            if kind == "_NL":
                # The last token passed on is the line's last (or a line break: none).
                if brackets or (line_tokens and line_tokens[-1].type in CONTINUES_LINE):
                    continue
                self._tail = (self._tail + line_tokens)[-2:]
                self.line_tokens = line_tokens = []
            value = m.group(kind)
            token = new_token(Token, value)
            token.type = kind
            token.value = value
            token.start_pos = start
            token.line = start_line
            token.column = column
            token.end_line = line
            token.end_column = token_end - line_start + 1
            token.end_pos = token_end
            if kind in NESTING:
                if kind in OPENERS:
                    brackets.append(token)
                    if len(brackets) > MAX_NESTING:
                        raise TooDeep(token)
                elif kind in CLOSERS:
                    if brackets and OPENERS[brackets[-1].type] == kind:
                        brackets.pop()
                elif kind == "LBRACE":
                    open_braces.append((token, list(line_tokens)))
                    brackets.clear()
                else:  # RBRACE
                    if open_braces:
                        open_braces.pop()
                    brackets.clear()
            if kind != "_NL":
                line_tokens.append(token)
            yield token

        counter.char_pos, counter.line, counter.line_start_pos = pos, line, line_start
        counter.column = pos - line_start + 1
