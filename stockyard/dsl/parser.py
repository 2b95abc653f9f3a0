"""Parse ``.pipe`` source into the AST (:mod:`stockyard.dsl.ast`), turning Lark's exceptions
into :class:`~stockyard.dsl.diagnostics.Diagnostic` values.

A file is parsed whole. When that fails, it is split at block headers and each block is parsed
on its own, so one broken block yields one diagnostic and the rest of the file is still checked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tempfile
import threading
from functools import cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .builder import AstBuilder
from .diagnostics import Diagnostic, Label, Severity
from .lalr import TableParser
from .lexer import CLOSERS, MAX_NESTING, OPENERS, PipeLexer, TooDeep
from .span import Span

GRAMMAR_NAME = "pipe.lark"

_BLOCK_HEADER = re.compile(
    r'^[ \t]*[A-Za-z_][A-Za-z0-9_.\-]*(?:[ \t]+(?:[A-Za-z_][A-Za-z0-9_.\-]*|"(?:[^"\\\n]|\\.)*"))?[ \t]*\{'
    # and a malformed header that still opens a block at the end of its line: `route 5 {`
    r'|^[ \t]*[A-Za-z_][A-Za-z0-9_.\-]*[ \t]+[^\n{}#"]*\{[ \t]*(?:#[^\n]*)?$',
    re.MULTILINE,
)


def grammar_path() -> Path:
    """The grammar shipped inside the package, or ``grammar/pipe.lark`` of a source checkout."""
    packaged = resources.files(__package__).joinpath(GRAMMAR_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "grammar" / GRAMMAR_NAME
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"the pipeline grammar {GRAMMAR_NAME} is missing from the installation")


def build_lark(*, strict: bool = False) -> tuple[Lark, PipeLexer]:
    """The parser and its lexer (which remembers what it saw, for error messages). ``strict``
    also proves the grammar has no conflicts and no colliding terminals (it needs the
    ``interegular`` package); tests/test_grammar.py builds it that way, so the runtime need not
    pay for the proof on every start."""
    grammar = grammar_path().read_text(encoding="utf-8")
    cache = None if strict else _cache_file()
    parser = None
    if cache is not None:
        try:  # the analysed grammar, pickled by Lark (keyed on the grammar, options and versions)
            parser = _new_lark(grammar, strict, cache)
        except Exception:  # a cache is only ever an optimisation
            pass
    if parser is None:
        parser = _new_lark(grammar, strict, False)
    lexer = parser.parser.lexer
    assert isinstance(lexer, PipeLexer)
    return parser, lexer


def _new_lark(grammar: str, strict: bool, cache: str | bool) -> Lark:
    return Lark(
        grammar,
        cache=cache,
        parser="lalr",
        lexer=PipeLexer,
        maybe_placeholders=False,
        strict=strict,
    )


def _cache_file() -> str | None:
    """Where Lark keeps the analysed grammar: a directory of this user's own in the temp
    directory (a pickle is only loaded from a place nobody else can write), else no cache."""
    getuid = getattr(os, "getuid", None)
    if getuid is None or os.environ.get("STOCKYARD_NO_GRAMMAR_CACHE"):
        return None
    try:
        directory = Path(tempfile.gettempdir()) / f"stockyard-{getuid()}"
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != getuid() or info.st_mode & 0o022:
            return None
        return str(directory / "pipe-grammar.lark-cache")
    except OSError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Parser:
    """Lark's table run by :class:`TableParser`, fed by the lexer, building the AST."""

    table: TableParser
    lexer: PipeLexer

    def blocks(self, text: str, path: str, line_offset: int) -> list[ast.Block]:
        """Parse to the AST's blocks; the caller holds ``_lock`` (the builder's file and
        offset, the lexer's memory of open blocks)."""
        _BUILDER.file = path
        _BUILDER.offset = line_offset
        return self.table.parse(self.lexer.tokens(text))  # type: ignore[no-any-return]


@cache
def _parser() -> _Parser:
    lark, lexer = build_lark()
    return _Parser(TableParser(lark, _BUILDER), lexer)


_lock = threading.Lock()


def parse(text: str, path: str) -> tuple[ast.SourceFile, list[Diagnostic]]:
    """Parse one file. Never raises on bad input: problems come back as diagnostics."""
    parser = _parser()
    with _lock:
        try:
            blocks = parser.blocks(text, path, 0)
        except (UnexpectedInput, TooDeep):
            return _parse_by_block(text, path, parser)
    return ast.SourceFile(path, text, tuple(blocks)), []


def _parse_by_block(
    text: str, path: str, parser: _Parser
) -> tuple[ast.SourceFile, list[Diagnostic]]:
    lexer = parser.lexer
    starts = [m.start() for m in _BLOCK_HEADER.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = list(zip(starts, starts[1:] + [len(text)]))
    blocks: list[ast.Block] = []
    broken: list[ast.BrokenBlock] = []
    diagnostics: list[Diagnostic] = []
    # The previous segment, when it ended inside an unclosed block: (segment, line offset,
    # its diagnostic, its broken header). A stray `}` after the next block closes it: nesting.
    unclosed: tuple[str, int, Diagnostic, ast.BrokenBlock | None] | None = None
    for index, (begin, end) in enumerate(bounds):
        segment = text[begin:end]
        line_offset = text.count("\n", 0, begin)
        next_header = _header_text(text, end) if index + 1 < len(bounds) else None
        strays: list[Diagnostic] = []
        skipped: list[Diagnostic] = []  # errors in attribute lines that were skipped
        skipped_lines: list[tuple[int, int, tuple[str, ...]]] = []
        failure: UnexpectedInput | None = None
        tree = None
        while tree is None and failure is None:
            try:
                tree = parser.blocks(segment, path, line_offset)
            except TooDeep as deep:
                diagnostics.append(_too_deep(deep.token, path, line_offset))
                header = _broken_header(segment, path, line_offset)
                if header is not None:
                    broken.append(header)
                break
            except UnexpectedInput as error:
                region = _skippable_lines(error, segment, lexer)
                if _stray_brace(error) and len(strays) < 10:
                    # Report the `}` and parse on without it, so the block before it is kept.
                    strays.append(
                        _syntax_diagnostic(
                            error, segment, path, line_offset, lexer, next_header, text
                        )
                    )
                    pos = error.token.start_pos  # type: ignore[attr-defined]
                    segment = segment[:pos] + " " + segment[pos + 1 :]
                elif _missing_open_brace(error, segment) and len(skipped) < 25:
                    # `route chat` with its `{` forgotten: report it, then read the block as if
                    # the `{` were there, so that its contents are checked too.
                    skipped.append(
                        _syntax_diagnostic(
                            error, segment, path, line_offset, lexer, next_header, text
                        )
                    )
                    pos = error.token.start_pos  # type: ignore[attr-defined]
                    segment = segment[:pos] + "{" + segment[pos:]
                elif region is not None and len(skipped) < 25:
                    # Report the error, blank out the attribute's line(s) and parse the rest of
                    # the block: one diagnostic per broken line, and the block is still checked.
                    skipped.append(
                        _syntax_diagnostic(
                            error, segment, path, line_offset, lexer, next_header, text
                        )
                    )
                    first, last = region
                    skipped_lines.append(
                        (first + line_offset, last + line_offset, _attribute_names(segment, region))
                    )
                    segment = _blank_lines(segment, first, last)
                else:
                    failure = error
        diagnostics += skipped
        if tree is None and failure is None:  # too deep: reported above
            diagnostics += strays
            unclosed = None
            continue
        if strays and unclosed is not None:
            outer_segment, outer_offset, outer_diagnostic, outer_header = unclosed
            diagnostics.remove(outer_diagnostic)
            diagnostics.append(
                _nested_block(outer_diagnostic, outer_header, segment, path, line_offset, strays[0])
            )
            strays = strays[1:]
            try:  # the stray `}` closes the outer block: read it as if closed in place
                blocks.extend(parser.blocks(outer_segment + "\n}", path, outer_offset))
                if outer_header is not None:
                    broken.remove(outer_header)
            except UnexpectedInput:
                pass
        diagnostics += strays
        unclosed = None
        if failure is not None:
            diagnostic = _syntax_diagnostic(
                failure, segment, path, line_offset, lexer, next_header, text
            )
            diagnostics.append(diagnostic)
            header = _broken_header(segment, path, line_offset)
            if header is not None:
                broken.append(header)
            if diagnostic.message.startswith("unclosed block"):
                unclosed = (segment, line_offset, diagnostic, header)
            continue
        for block in tree:
            names = tuple(
                name
                for first, last, found in skipped_lines
                if block.span.line <= first and last <= block.span.end_line
                for name in found
            )
            blocks.append(dataclasses.replace(block, broken=names) if names else block)
    return ast.SourceFile(path, text, tuple(blocks), tuple(broken)), diagnostics


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
_LINE_GOES_ON = (",", "->", "|", "(", "[", ":", "\\")


def _skippable_lines(
    error: UnexpectedInput, segment: str, lexer: PipeLexer
) -> tuple[int, int] | None:
    """The lines (1-based, within ``segment``) of the attribute in which a syntax error was
    found, when it is safely inside a block: blanking them leaves the rest parseable. None when
    the error is elsewhere (a block header, the end of the file, a lone `}`)."""
    if isinstance(error, UnexpectedEOF) or not lexer.open_braces:
        return None
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            return None
        error_line = error.token.line or 0
    elif isinstance(error, UnexpectedCharacters):
        error_line = error.line
    else:
        return None
    brace, _ = lexer.open_braces[-1]
    start = lexer.line_tokens[0].line if lexer.line_tokens else error_line
    if start is None or start <= (brace.line or 0):
        return None  # the header line, or an attribute on the header's line
    lines = segment.split("\n")
    depth = 0
    for number in range(start, len(lines) + 1):
        raw = _STRING_OR_COMMENT.sub('""', lines[number - 1]).strip()
        if raw.startswith("}"):
            return (start, number - 1) if start <= number - 1 and error_line <= number else None
        depth += raw.count("(") + raw.count("[") - raw.count(")") - raw.count("]")
        if number >= error_line and depth <= 0 and not raw.endswith(_LINE_GOES_ON):
            return start, number
    return None  # the attribute runs to the end of the text: nothing to resume from


def _attribute_names(segment: str, region: tuple[int, int]) -> tuple[str, ...]:
    """Names that may start an attribute on these lines (each `;`-separated part)."""
    names: list[str] = []
    for line in segment.split("\n")[region[0] - 1 : region[1]]:
        for part in _STRING_OR_COMMENT.sub('""', line).split(";"):
            m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", part)
            if m:
                names.append(m.group(1))
    return tuple(names)


def _blank_lines(segment: str, first: int, last: int) -> str:
    lines = segment.split("\n")
    for number in range(first, last + 1):
        lines[number - 1] = " " * len(lines[number - 1])
    return "\n".join(lines)


def _too_deep(token: Token, path: str, line_offset: int) -> Diagnostic:
    line = (token.line or 1) + line_offset
    column = token.column or 1
    return Diagnostic(
        "SY001",
        Severity.ERROR,
        f"brackets nested more than {MAX_NESTING} deep",
        Span(path, line, column, line, column + 1),
        "too deep",
        help="a value nests a few levels at most, e.g. `[cache(ttl: 10m)]`",
    )


def _missing_open_brace(error: UnexpectedInput, segment: str) -> bool:
    """`route chat` at the end of a line, its attributes indented below it: a forgotten `{`."""
    if not (
        isinstance(error, UnexpectedToken)
        and error.token.type == "_NL"
        and "LBRACE" in error.expected
    ):
        return False
    lines = segment.split("\n")
    line = error.token.line or 0
    if not 0 < line < len(lines):
        return False
    header = lines[line - 1]
    following = next((x for x in lines[line:] if x.strip() and not x.strip().startswith("#")), "")
    indent = len(header) - len(header.lstrip())
    return len(following) - len(following.lstrip()) > indent


def _stray_brace(error: UnexpectedInput) -> bool:
    """A `}` where a new block or the end of the file should come: it closes nothing."""
    return (
        isinstance(error, UnexpectedToken)
        and error.token.type == "RBRACE"
        and "$END" in error.expected
    )


def _nested_block(
    outer: Diagnostic,
    outer_header: ast.BrokenBlock | None,
    segment: str,
    path: str,
    line_offset: int,
    stray: Diagnostic,
) -> Diagnostic:
    """`provider a { … route b { … } }`: one diagnostic, not "unclosed" plus "stray `}`"."""
    inner = _broken_header(segment, path, line_offset)
    inner_name = " ".join(x for x in (inner.kind, inner.name) if x) if inner else "block"
    outer_name = (
        " ".join(x for x in (outer_header.kind, outer_header.name) if x) if outer_header else ""
    )
    assert outer.span is not None and stray.span is not None
    inner_span = inner.header if inner else stray.span
    return Diagnostic(
        "SY001",
        Severity.ERROR,
        f"block `{inner_name}` is inside block `{outer_name}`",
        inner_span,
        "blocks cannot be nested",
        notes=(f"the `}}` on line {stray.span.line} closes `{outer_name}`",),
        help=f"close `{outer_name}` before line {inner_span.line}, and remove the `}}` on "
        f"line {stray.span.line}",
        related=(Label(outer.span, f"`{outer_name}` opens here"),),
    )


_HEADER_PARTS = re.compile(
    r'[ \t]*([A-Za-z_][A-Za-z0-9_.\-]*)(?:[ \t]+([A-Za-z_][A-Za-z0-9_.\-]*|"(?:[^"\\\n]|\\.)*"))?[ \t]*\{'
)


def _broken_header(segment: str, path: str, line_offset: int) -> ast.BrokenBlock | None:
    """What a block that failed to parse declares, read from its header line."""
    m = _HEADER_PARTS.match(segment)
    if m is None:
        return None
    kind, label = m.group(1), m.group(2)
    name = None
    if label is not None:
        name = ast.Literal("string", label, _NO_SPAN).text if label.startswith('"') else label
    line = line_offset + 1
    end = m.end(2) if label is not None else m.end(1)
    return ast.BrokenBlock(kind, name, Span(path, line, m.start(1) + 1, line, end + 1))


_NO_SPAN = Span("", 1, 1, 1, 1)


def _header_text(text: str, offset: int) -> tuple[str, int]:
    line_end = text.find("\n", offset)
    header = text[offset : line_end if line_end >= 0 else len(text)].split("{", 1)[0].strip()
    return header, text.count("\n", 0, offset) + 1


_BUILDER = AstBuilder()


# --- syntax errors in words -----------------------------------------------------------------

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


def _end_of_text_span(text: str, path: str, line_offset: int) -> Span:
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return Span(path, line + line_offset, column, line + line_offset, column + 1)


def _syntax_diagnostic(
    error: UnexpectedInput,
    segment: str,
    path: str,
    line_offset: int,
    lexer: PipeLexer,
    next_header: tuple[str, int] | None,
    whole_text: str,
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


def _between(lexer: PipeLexer, token: Token, fallback: str) -> str:
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


def _dangling(token: Token, lexer: PipeLexer, at) -> Diagnostic | None:  # type: ignore[no-untyped-def]
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


def _bad_character(error: UnexpectedCharacters, segment: str, at) -> Diagnostic:  # type: ignore[no-untyped-def]
    line_text = _line(segment, error.line)
    rest = line_text[error.column - 1 :]
    char = rest[:1] or segment[error.pos_in_stream : error.pos_in_stream + 1]
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
    lexer: PipeLexer,
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
