"""The lexer of ``.pipe`` files: Lark's basic lexer, with the scanning loop done in one pass.

Lark's own loop costs about 3 µs a token (a method call, a tuple and a line counter per match,
then a post-lexer generator on top); a 10,000-line pipeline has 180,000 tokens. This class keeps
everything Lark's :class:`~lark.lexer.BasicLexer` decides once per grammar — which terminals
exist, their order, the combined regular expression, which ones are ignored or may span lines,
and, in strict mode, the proof that no two collide — and replaces only the loop. The tokens are
the same, with the same positions, and a character nothing matches raises the same
:class:`~lark.exceptions.UnexpectedCharacters`.

Line continuation is done in the same loop (it used to be a Lark post-lexer): a line break
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

from .scanner import BLANKS, FirstCharScanner

# Tokens after which a line break does not end the attribute: the value goes on.
CONTINUES_LINE = frozenset({"COMMA", "_ARROW", "_BAR", "LPAR", "LSQB", "COLON"})
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB"}
CLOSERS = frozenset(OPENERS.values())
_NESTING = frozenset({*OPENERS, *CLOSERS, "LBRACE", "RBRACE"})

MAX_NESTING = 32  # brackets inside brackets; real pipelines use three or four


class TooDeep(Exception):
    """Brackets nested past :data:`MAX_NESTING`: refused before the recursive tree walk."""

    def __init__(self, token: Token) -> None:
        super().__init__("nesting too deep")
        self.token = token


class PipeLexer(BasicLexer):
    """Lark's basic lexer for the pipe grammar with a faster loop and line continuation.

    What the loop saw last is kept on the instance for error messages: ``open_braces`` (each
    ``{`` with the tokens of its header line), ``open_brackets``, ``recent`` (the last two
    tokens passed on, line breaks excluded) and ``line_tokens`` (the current logical line).
    """

    __future_interface__ = 2  # Lark calls lex(lexer_state, parser_state) on this class itself

    def __init__(self, conf: LexerConf, comparator: Any = None) -> None:
        super().__init__(conf, comparator)
        self.open_braces: list[tuple[Token, list[Token]]] = []
        self.open_brackets: list[Token] = []
        self.line_tokens: list[Token] = []
        self._tail: list[Token] = []  # the last two tokens before the current line
        self._scan: FirstCharScanner | None = None

    def _compile(self) -> FirstCharScanner:
        scanner = self.scanner
        if len(scanner._mres) != 1 or self.callback:
            # The pipe grammar needs neither; a grammar that does would lex differently here.
            raise AssertionError("the pipe lexer expects one regular expression, no callbacks")
        skip_blanks = any(
            t.name in self.ignore_types and t.pattern.to_regexp() == BLANKS for t in self.terminals
        )
        return FirstCharScanner(self.terminals, scanner._mres[0], skip_blanks)

    @property
    def last_before_line(self) -> Token | None:
        """The last token passed on before the current logical line."""
        return self._tail[-1] if self._tail else None

    @property
    def recent(self) -> list[Token]:
        return (self._tail + self.line_tokens)[-2:]

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

        self.open_braces = open_braces = []
        self.open_brackets = brackets = []
        self.line_tokens = line_tokens = []
        self._tail = []

        while pos < end:
            m = by_char(text[pos], general)(text, pos, end)
            if m is None:
                counter.char_pos, counter.line, counter.line_start_pos = pos, line, line_start
                counter.column = pos - line_start + 1
                raise UnexpectedCharacters(
                    text,
                    pos,
                    line,
                    pos - line_start + 1,
                    allowed=scanner.allowed_types - ignored,
                    token_history=self.recent[-1:] or None,
                    state=parser_state,
                    terminals_by_name=self.terminals_by_name,
                )
            kind = m.lastgroup
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
            token.type = kind  # type: ignore[misc]
            token.value = value
            token.start_pos = start
            token.line = start_line
            token.column = column
            token.end_line = line
            token.end_column = token_end - line_start + 1
            token.end_pos = token_end
            if kind in _NESTING:
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
