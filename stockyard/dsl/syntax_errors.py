"""Syntax errors in words: what Lark reports (an unexpected token or character, the end of the
text) turned into a :class:`~stockyard.dsl.diagnostics.Diagnostic` that names the problem in the
language's own terms (`a duration`, `the end of the file`, the block left open) and says what to
write instead. The lexer's memory of open blocks, brackets and the last tokens supplies the
context.
"""

from __future__ import annotations

import re
from typing import Protocol

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..core.span import Span
from .continuation import CLOSERS, OPENERS, TokenMemory, line_goes_on_words
from .diagnostics import Diagnostic, Label, Severity

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "DURATION": "a duration",
    "MONEY": "an amount like `$25`",
    "RATE": "a rate like `60/min`",
    "SIZE": "a size like `10MiB`",
    "STATUS": "a status class like `5xx`",
    "PATH": "a path like `/v1/chat/completions`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "SEMICOLON": "`;`",
    "_ARROW": "`->`",
    "_BAR": "`|`",
    "_NL": "a line break",
    "$END": "the end of the file",
}
_VALUE_TERMINALS = frozenset(
    {"STRING", "NUMBER", "DURATION", "MONEY", "RATE", "SIZE", "STATUS", "PATH", "LSQB"}
)
_WORD_ORDER = list(_TERMINAL_WORDS)


def _expected_words(expected: set[str]) -> str:
    names = set(expected)
    words: list[str] = []
    if _VALUE_TERMINALS <= names:
        names -= _VALUE_TERMINALS
        words.append("a value" if "NAME" not in names else "a name or a value")
        names.discard("NAME")
    if "_NL" in names and "SEMICOLON" in names:
        names.discard("SEMICOLON")
    words += [_TERMINAL_WORDS.get(n, f"`{n}`") for n in sorted(names, key=_order)]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _order(name: str) -> int:
    return _WORD_ORDER.index(name) if name in _WORD_ORDER else len(_WORD_ORDER)


def _describe_token(token: Token) -> str:
    if token.type == "NAME":
        return f"name `{token}`"
    if token.type == "_NL":
        return "end of line"
    if token.type == "$END":
        return "end of the file"
    if token.type in _TERMINAL_WORDS and token.type not in _VALUE_TERMINALS:
        return _TERMINAL_WORDS[token.type]
    return f"`{token}`"


class _At(Protocol):
    """The span of ``width`` columns at a line and column of the text being parsed."""

    def __call__(self, line: int, column: int, width: int = 1) -> Span: ...


def _end_of_text_span(text: str, path: str, line_offset: int) -> Span:
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return Span(path, line + line_offset, column, line + line_offset, column + 1)


def syntax_diagnostic(
    error: UnexpectedInput,
    segment: str,
    path: str,
    line_offset: int,
    lexer: TokenMemory,
    next_header: tuple[str, int] | None,
) -> Diagnostic:
    def at(line: int, column: int, width: int = 1) -> Span:
        return Span(path, line + line_offset, column, line + line_offset, column + width)

    if isinstance(error, UnexpectedCharacters):
        return _bad_character(error, segment, at)
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        return _unexpected_end(error, segment, path, line_offset, lexer, next_header)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    expected = set(error.expected)
    dangling = _dangling(token, lexer, at)
    if dangling is not None:
        return dangling
    above = values_below_name(error, segment, lexer)
    if above is not None:
        name_line, name = above
        rest = _line(segment, token.line).strip()
        return Diagnostic(
            "SY001",
            Severity.ERROR,
            f"the values of `{name}` are on the line below it",
            at(token.line, lexer.line_tokens[0].column or 1, max(1, len(rest))),
            f"read as a new line, not as values of `{name}`",
            notes=(
                f"a line break ends an attribute, unless the line ends with {line_goes_on_words()}",
            ),
            help=f"write them on line {name_line + line_offset}: `{name} {rest}`",
        )
    width = (
        max(1, (token.end_column or token.column + 1) - token.column) if token.type != "_NL" else 1
    )
    span = at(token.line, token.column, width)
    if "RBRACE" in expected:
        expected.discard("$END")  # inside a block the file cannot end yet
    message = f"unexpected {_describe_token(token)}, expected {_expected_words(expected)}"
    line_text = _line(segment, token.line)
    help_text: str | None = None
    if token.type == "COLON":
        help_text = "attributes are written `name value` without a colon" + _rewrite(
            line_text, token.column, " ", "timeout 30s"
        )
    elif token.type == "LBRACE":
        help_text = "blocks cannot be nested; is a `}` missing above?"
    elif token.type in CLOSERS | {"RBRACE"} and expected & CLOSERS - {token.type}:
        opener = next((o for o, c in OPENERS.items() if c in expected and c != token.type), "LPAR")
        help_text = (
            f"close the {_TERMINAL_WORDS[opener]} first: "
            f"add {_TERMINAL_WORDS[OPENERS[opener]]} before this {_TERMINAL_WORDS[token.type]}"
        )
    elif token.type == "RBRACE" and ("$END" in expected or "NAME" in expected):
        help_text = "this `}` closes no block: remove it, or add the `{` it was meant to close"
    elif token.type == "_NL" and "RSQB" in expected:
        help_text = "add a `,` between list items"
    elif token.type in _VALUE_TERMINALS | {"NAME"} and "COMMA" in expected and "RSQB" in expected:
        help_text = "add a `,` between list items" + _between(lexer, token, "[trace, audit]")
    elif token.type in _VALUE_TERMINALS | {"NAME"} and "COMMA" in expected and "RPAR" in expected:
        help_text = "separate arguments with `,`" + _between(
            lexer, token, "cache(ttl: 10m, max_entries: 5000)"
        )
    elif token.type == "_NL" and "LBRACE" in expected and line_text[:1] in (" ", "\t"):
        word = line_text.split()[0] if line_text.split() else ""
        column = len(line_text) - len(line_text.lstrip()) + 1
        return Diagnostic(
            "SY001",
            Severity.ERROR,
            f"attribute `{word}` is outside any block",
            at(token.line, column, max(1, len(word))),
            "not inside a block",
            help="is the line that opens the block (`kind name {`) missing above it?",
        )
    elif token.type == "_NL" and "LBRACE" in expected:
        help_text = (
            f"a block opens with `{{` on its first line: add `{{` at the end of line {span.line}"
        )
    elif token.type in ("NAME", "STRING") and "LBRACE" in expected:
        help_text = "a block is written `kind name { … }`, e.g. `route chat { … }`"
    elif token.type in _VALUE_TERMINALS and "LBRACE" in expected:
        help_text = "a block's name is a word that starts with a letter, e.g. `route chat { … }`"
    elif token.type == "NAME" and "RPAR" in expected:
        help_text = "separate arguments with `,` and write named ones as `name: value`"
    elif token.type == "NAME" and "LBRACE" not in expected and "_NL" in expected:
        help_text = "one attribute per line, or separate them with `;`"
    if help_text is None:
        help_text = _fallback_help(token, expected)
    return Diagnostic("SY001", Severity.ERROR, message, span, "unexpected here", (), help_text)


def values_below_name(
    error: UnexpectedInput, segment: str, lexer: TokenMemory
) -> tuple[int, str] | None:
    """`models` alone on its line, its values on the next (`"a", "b"`, `[trace]`, or a chain
    `openai -> backup` read as an attribute named `openai`): (the name's line, the name)."""
    if not isinstance(error, UnexpectedToken):
        return None
    token = error.token
    line = lexer.line_tokens
    value_first = token.type in _VALUE_TERMINALS and line[:1] == [token]
    name_first = (
        token.type in _CHAIN_CONTINUES
        and len(line) == 2
        and line[1] is token
        and line[0].type == "NAME"
    )
    name = lexer.last_before_line
    if not (value_first or name_first) or name is None or name.type != "NAME":
        return None
    if not name.line or name.line >= (token.line or 0):
        return None
    if _line(segment, name.line).split("#")[0].strip() != str(name):
        return None  # not alone on its line: an attribute with values of its own
    return name.line, str(name)


_CHAIN_CONTINUES = frozenset({"_ARROW", "_BAR", "LPAR", "COMMA"})


def _fallback_help(token: Token, expected: set[str]) -> str | None:
    """Something to do about an unexpected token when no better advice applies."""
    shown = _TERMINAL_WORDS.get(token.type, f"`{token}`")
    if token.type in CLOSERS:
        return f"this {shown} closes nothing: remove it"
    if token.type == "LPAR":
        return "`(` follows a name directly, as in `cache(ttl: 10m)`"
    if token.type in ("_ARROW", "_BAR"):
        return f"{shown} goes between two providers, as in `chain a -> b | c`"
    if token.type == "COMMA":
        return "`,` goes between two values"
    if "NAME" in expected and "RBRACE" in expected:
        return "each line of a block starts with an attribute's name, e.g. `timeout 30s`"
    if "$END" in expected:
        return "outside blocks only `kind name { … }` may appear: is a `}` too early above?"
    if "LBRACE" in expected:
        return "a block is written `kind name { … }`, e.g. `route chat { … }`"
    return None


def _between(lexer: TokenMemory, token: Token, fallback: str) -> str:
    """``: `trace, audit``` — the two items a comma should separate, as written."""
    recent = lexer.recent
    if (
        len(recent) == 2
        and recent[-1] is token
        and recent[0].type
        in _VALUE_TERMINALS
        | {
            "NAME",
            "RPAR",
            "RSQB",
        }
    ):
        before = (
            "…)" if recent[0].type == "RPAR" else "…]" if recent[0].type == "RSQB" else recent[0]
        )
        return f": `{before}, {token}`"
    return f", e.g. `{fallback}`"


def _line(segment: str, line: int) -> str:
    lines = segment.split("\n")
    return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""


def _rewrite(line_text: str, column: int, replacement: str, fallback: str) -> str:
    """``: write `kind openai``` — the line with the character at ``column`` replaced."""
    before, after = line_text[: column - 1].rstrip(), line_text[column:].lstrip()
    if before.strip() and after.strip():
        return f": write `{before.strip()}{replacement}{after.strip()}`"
    return f", e.g. `{fallback}`"


_DANGLING = {
    "_ARROW": ("`->`", "the next provider of the chain"),
    "_BAR": ("`|`", "the next provider of the tier"),
    "COMMA": ("`,`", "the next value"),
}


def _dangling(token: Token, lexer: TokenMemory, at: _At) -> Diagnostic | None:
    """``chain openai ->`` at the end of a line: the value goes on, and then nothing comes."""
    recent = lexer.recent
    if len(recent) < 2 or recent[-1] is not token:
        return None
    previous = recent[-2]
    if previous.type not in _DANGLING or (token.line or 0) <= (previous.line or 0):
        return None
    if token.type not in ("RBRACE", "NAME") and token.type not in CLOSERS:
        return None
    if previous.type == "COMMA" and token.type != "RBRACE":
        return None  # a comma ending a line inside brackets is fine; after it, anything may come
    shown, what = _DANGLING[previous.type]
    assert previous.line is not None and previous.column is not None  # lexed: it has a place
    span = at(previous.line, previous.column, 1 if previous.type != "_ARROW" else 2)
    return Diagnostic(
        "SY001",
        Severity.ERROR,
        f"{shown} at the end of line {span.line} is not followed by {what}",
        span,
        f"nothing after this {shown}",
        notes=(f"a line ending in {shown} continues on the next line",),
        help=f"add {what} after {shown}, or remove it",
    )


def _bad_character(error: UnexpectedCharacters, segment: str, at: _At) -> Diagnostic:
    line_text = _line(segment, error.line)
    rest = line_text[error.column - 1 :]
    pos: int = error.pos_in_stream  # type: ignore[assignment]  # Lark's class default is None; a lexer error sets it
    char = rest[:1] or segment[pos : pos + 1]
    if char == '"':
        return Diagnostic(
            "SY003",
            Severity.ERROR,
            "unterminated string",
            at(error.line, error.column, max(1, len(rest.rstrip()))),
            'this string has no closing `"`',
            help='strings end on the line they start; close it with `"`',
        )
    word = re.match(r"[^\s,;()\[\]{}#]+", rest)
    text = word.group(0) if word else char
    if char.isdigit() or char in "$/":
        return Diagnostic(
            "SY004",
            Severity.ERROR,
            f"invalid literal `{text}`",
            at(error.line, error.column, len(text)),
            "not a number, duration, amount, rate or size",
            notes=(
                "literals look like `2`, `0.5`, `250ms`, `30s`, `5m`, `1h`, `7d`, `$25`, "
                "`$0.15/1M`, `60/min`, `10MiB`, `5xx`, `/v1/chat/completions`",
            ),
            help=_literal_help(text),
        )
    help_text = None
    if char == "=":
        help_text = "attributes are written `name value`, without `=`" + _rewrite(
            line_text, error.column, " ", "timeout 30s"
        )
        before = line_text[: error.column - 1]
        if before.count("(") > before.count(")"):
            help_text = "arguments are written `name: value`" + _rewrite(
                line_text, error.column, ": ", "cache(ttl: 10m)"
            )
    elif char == ":":
        help_text = "write `name value`, e.g. `timeout 30s`"
    elif char == "'":
        quoted = re.match(r"'([^'\n]*)'", rest)
        help_text = 'strings use double quotes: "…"'
        if quoted:
            help_text = f'strings use double quotes: write `"{quoted.group(1)}"`'
    elif char == ">":
        help_text = "did you mean `->`?"
    elif char == "\ufffd":
        help_text = "remove the character, or save the file as UTF-8"
    elif not char.isascii() and char.isalnum():
        help_text = (
            "names use ASCII letters, digits, `_`, `-` and `.`; other text belongs in a string"
        )
    return Diagnostic(
        "SY004",
        Severity.ERROR,
        f"unexpected character `{char}`",
        at(error.line, error.column, 1),
        "not valid here",
        help=help_text or "remove it",
    )


def _literal_help(text: str) -> str | None:
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", text)
    if m:
        unit = m.group(2).lower()
        if unit in ("sec", "secs", "second", "seconds"):
            return f"write `{m.group(1)}s`"
        if unit in ("min", "mins", "minute", "minutes"):
            return f"write `{m.group(1)}m` for minutes"
        if unit in ("hr", "hrs", "hour", "hours"):
            return f"write `{m.group(1)}h`"
        if unit in ("day", "days"):
            return f"write `{m.group(1)}d`"
        if unit in ("mb", "kb", "gb", "mib", "kib", "gib"):
            return "sizes are written `10MB` or `10MiB` (units are case-sensitive)"
        if m.group(2) in ("k", "K", "M") and re.fullmatch(r"[0-9]+", m.group(1)):
            full = int(m.group(1)) * (1_000_000 if m.group(2) == "M" else 1000)
            return f"write the number in full: `{full}` (`k` and `M` only appear in rates)"
        return (
            f"a number is digits only (`{m.group(1)}`); durations take ms, s, m, h or d "
            "(`30s`); sizes B, KB, MB, GB, KiB, MiB or GiB (`10MiB`)"
        )
    if text.startswith("$"):
        return "amounts are written `$25` or `$0.15/1M` (per million tokens)"
    return None


def _unexpected_end(
    error: UnexpectedInput,
    segment: str,
    path: str,
    line_offset: int,
    lexer: TokenMemory,
    next_header: tuple[str, int] | None,
) -> Diagnostic:
    end = _end_of_text_span(segment, path, line_offset)
    if next_header is not None:
        where = f"before `{next_header[0]}` on line {next_header[1]}"
    else:
        where = "before the end of the file"

    def span_of(token: Token) -> Span:
        line = (token.line or 1) + line_offset
        return Span(path, line, token.column or 1, line, (token.column or 1) + 1)

    if lexer.open_brackets:
        bracket = lexer.open_brackets[-1]
        closer = _TERMINAL_WORDS[OPENERS[bracket.type]]
        what = "list" if bracket.type == "LSQB" else "argument list"
        then = " and the block with `}`" if lexer.open_braces else ""
        return Diagnostic(
            "SY002",
            Severity.ERROR,
            f"unclosed {_TERMINAL_WORDS[bracket.type]}",
            span_of(bracket),
            f"this {_TERMINAL_WORDS[bracket.type]} is never closed",
            notes=(f"expected {closer} {where}",),
            help=f"close the {what} with {closer}{then}",
            related=(Label(end, "the file ends here" if next_header is None else "last line"),),
        )
    if lexer.open_braces:
        brace, header_tokens = lexer.open_braces[-1]
        header = " ".join(str(t) for t in header_tokens) or "block"
        return Diagnostic(
            "SY002",
            Severity.ERROR,
            f"unclosed block `{header}`",
            span_of(brace),
            "this `{` is never closed",
            notes=(f"expected `}}` {where}",),
            help="add `}` after the block's last attribute",
            related=(Label(end, "the block should end by here"),),
        )
    expected = set(getattr(error, "expected", None) or ())
    words = _expected_words(expected) if expected else "more input"
    help_text = None
    if "LBRACE" in expected:
        help_text = "a block is written `kind name { … }`, e.g. `route chat { … }`"
    elif "RBRACE" in expected:
        help_text = "close the block with `}`"
    return Diagnostic(
        "SY002",
        Severity.ERROR,
        f"unexpected end of file, expected {words}",
        end,
        "the file ends here",
        help=help_text,
    )
