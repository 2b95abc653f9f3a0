"""Parse ``.pipe`` source into the AST (:mod:`stockyard.dsl.syntax`); problems come back as
:class:`~stockyard.dsl.diagnostics.Diagnostic` values, never as exceptions.

Lark analyses the grammar (:mod:`.grammar`, cached on disk); :mod:`.lexer` tokenizes,
:mod:`.lalr` runs the table and :mod:`.builder` makes the nodes as rules reduce. The lexer and
the table loop are an accelerator built on Lark's internals: when they cannot be built (a Lark
release renamed something), Lark's own lexer and parser do the same work, slower, with the same
builder and the same continuation rule (:mod:`.continuation`). A file is parsed whole. When that
fails, it is split at block headers and each block is parsed on its own, so one broken block
yields one diagnostic and the rest of the file is still checked; :mod:`.syntax_errors` words
the errors.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import threading
from functools import cache
from typing import TYPE_CHECKING, Protocol

from lark import Lark, Token
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..core.span import Span
from . import syntax
from .builder import AstBuilder
from .continuation import (
    MAX_NESTING,
    ContinuationPostLex,
    TokenMemory,
    TooDeep,
    line_goes_on,
)
from .diagnostics import Diagnostic, Label, Severity
from .grammar import (
    GRAMMAR_NAME,
    analysed,
    grammar_path,
    new_lark,
    terminal_regexp,
)
from .syntax_errors import syntax_diagnostic, values_below_name

if TYPE_CHECKING:
    from .lalr import TableParser
    from .lexer import PipeLexer

__all__ = ["GRAMMAR_NAME", "build_lark", "grammar_path", "parse"]

log = logging.getLogger("stockyard.dsl")


def build_lark(*, strict: bool = False) -> tuple[Lark, PipeLexer]:
    """The analysed grammar and the fast lexer over it (which remembers what it saw, for error
    messages). ``strict`` proves the grammar has no conflicts and no colliding terminals."""
    from .lexer import PipeLexer

    lark = new_lark(strict=strict) if strict else analysed()
    return lark, _pipe_lexer(lark, PipeLexer)


def _pipe_lexer(lark: Lark, lexer_class: type[PipeLexer]) -> PipeLexer:
    # Lark's own lexer has validated the terminals already (or the cache skipped it): a copy of
    # its configuration that says so spares the fast lexer the same checks.
    conf = copy.copy(lark.lexer_conf)
    conf.skip_validation = True
    lexer = lexer_class(conf)
    lexer.prepare()
    return lexer


class _Parser(Protocol):
    @property
    def lexer(self) -> TokenMemory: ...

    def blocks(self, text: str, path: str, line_offset: int) -> list[syntax.Block]:
        """Parse to the AST's blocks; the caller holds ``_lock`` (the builder's file and
        offset, the lexer's memory of open blocks)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class _FastParser:
    """Lark's table run by :class:`TableParser`, fed by the fast lexer, building the AST."""

    table: TableParser
    lexer: PipeLexer

    def blocks(self, text: str, path: str, line_offset: int) -> list[syntax.Block]:
        _BUILDER.file = path
        _BUILDER.offset = line_offset
        blocks: list[syntax.Block] = self.table.parse(self.lexer.tokens(text))
        return blocks


@dataclasses.dataclass(frozen=True, slots=True)
class _LarkParser:
    """Lark's own lexer and LALR parser, with the same builder as transformer and the same
    continuation rule as post-lexer: the fallback, and the reference the fast one is tested
    against."""

    lark: Lark
    lexer: ContinuationPostLex

    def blocks(self, text: str, path: str, line_offset: int) -> list[syntax.Block]:
        _BUILDER.file = path
        _BUILDER.offset = line_offset
        blocks: list[syntax.Block] = self.lark.parse(text)  # type: ignore[assignment]  # the transformer's value, not a Tree
        return blocks


def lark_parser() -> _LarkParser:
    """A parser of Lark's own (public API only), building the same AST as the fast one."""
    postlex = ContinuationPostLex()
    return _LarkParser(new_lark(transformer=_BUILDER, postlex=postlex), postlex)


def fast_parser() -> _FastParser:
    """The fast lexer and table loop. Raises whatever a Lark release that changed its
    internals makes them raise."""
    from .lalr import TableParser
    from .lexer import PipeLexer

    lark = analysed()
    return _FastParser(TableParser(lark, _BUILDER), _pipe_lexer(lark, PipeLexer))


@cache
def _parser() -> _Parser:
    try:
        return fast_parser()
    except Exception as error:  # an accelerator only: any failure to build it means Lark's own
        # Said once per process (the parser is built once); the traceback is for a bug report.
        log.warning(
            "the fast pipeline parser cannot be built with lark %s (%s: %s); "
            "using Lark's own parser: same results, slower",
            lark_version,
            type(error).__name__,
            error,
        )
        log.debug("why the fast pipeline parser cannot be built", exc_info=True)
        return lark_parser()


# A name as written in a block header, well-formed or not (`a..b`, `a-`): the characters of the
# grammar's NAME without its rule that `.` and `-` only join words, so that a header with a
# malformed name still starts a block. tests/test_grammar.py proves every NAME matches it.
LOOSE_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"


@dataclasses.dataclass(frozen=True, slots=True)
class _Shapes:
    """What error recovery looks for in raw text, built from the grammar's terminals."""

    block_header: re.Pattern[str]  # where a block starts: a file is split there
    header_parts: re.Pattern[str]  # a header's kind and name
    header_with_extra: re.Pattern[str]  # `route chat extra {`: group 1 is the extra
    string_or_comment: re.Pattern[str]  # blanked out before counting brackets
    line_goes_on: tuple[str, ...]  # a line ending in one of these continues the attribute


@cache
def _shapes() -> _Shapes:
    # Built on first use: only a file with a syntax error needs them, and the grammar is loaded
    # by then.
    string, comment = terminal_regexp("STRING"), terminal_regexp("COMMENT")
    label = f"(?:{LOOSE_NAME}|{string})"
    return _Shapes(
        block_header=re.compile(
            rf"^[ \t]*{LOOSE_NAME}(?:[ \t]+{label})?[ \t]*\{{"
            # and a malformed header that still opens a block at the end of its line: `route 5 {`
            rf'|^[ \t]*{LOOSE_NAME}[ \t]+[^\n{{}}#"]*\{{[ \t]*(?:{comment})?$',
            re.MULTILINE,
        ),
        header_parts=re.compile(
            rf"[ \t]*({LOOSE_NAME})(?:[ \t]+({LOOSE_NAME}|{string}))?[ \t]*\{{"
        ),
        header_with_extra=re.compile(rf"[ \t]*{LOOSE_NAME}[ \t]+{label}([^\n{{}}#]+)\{{"),
        string_or_comment=re.compile(f"{string}|{comment}"),
        line_goes_on=line_goes_on(),
    )


_lock = threading.Lock()


def parse(text: str, path: str) -> tuple[syntax.SourceFile, list[Diagnostic]]:
    """Parse one file. Never raises on bad input: problems come back as diagnostics."""
    parser = _parser()
    with _lock:
        try:
            blocks = parser.blocks(text, path, 0)
        except (UnexpectedInput, TooDeep):
            return _parse_by_block(text, path, parser)
    return syntax.SourceFile(path, text, tuple(blocks)), []


def _parse_by_block(
    text: str, path: str, parser: _Parser
) -> tuple[syntax.SourceFile, list[Diagnostic]]:
    lexer = parser.lexer
    starts = [m.start() for m in _shapes().block_header.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = list(zip(starts, starts[1:] + [len(text)]))
    blocks: list[syntax.Block] = []
    broken: list[syntax.BrokenBlock] = []
    diagnostics: list[Diagnostic] = []
    # The previous segment, when it ended inside an unclosed block: (segment, line offset,
    # its diagnostic, its broken header). A stray `}` after the next block closes it: nesting.
    unclosed: tuple[str, int, Diagnostic, syntax.BrokenBlock | None] | None = None
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
                        syntax_diagnostic(error, segment, path, line_offset, lexer, next_header)
                    )
                    pos = error.token.start_pos  # type: ignore[attr-defined]  # UnexpectedToken: its token
                    segment = segment[:pos] + " " + segment[pos + 1 :]
                elif _missing_open_brace(error, segment) and len(skipped) < 25:
                    # `route chat` with its `{` forgotten: report it, then read the block as if
                    # the `{` were there, so that its contents are checked too.
                    skipped.append(
                        syntax_diagnostic(error, segment, path, line_offset, lexer, next_header)
                    )
                    pos = error.token.start_pos  # type: ignore[attr-defined]  # UnexpectedToken: its token
                    segment = segment[:pos] + "{" + segment[pos:]
                elif (repaired := _repaired_header(error, segment)) and len(skipped) < 25:
                    # `route chat extra {`: report it, then read the block under its first two
                    # words, so that its contents are checked too.
                    skipped.append(
                        syntax_diagnostic(error, segment, path, line_offset, lexer, next_header)
                    )
                    segment = repaired
                elif region is not None and len(skipped) < 25:
                    # Report the error, blank out the attribute's line(s) and parse the rest of
                    # the block: one diagnostic per broken line, and the block is still checked.
                    skipped.append(
                        syntax_diagnostic(error, segment, path, line_offset, lexer, next_header)
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
            diagnostic = syntax_diagnostic(failure, segment, path, line_offset, lexer, next_header)
            diagnostics.append(diagnostic)
            header = _broken_header(segment, path, line_offset)
            if header is not None:
                broken.append(header)
            if diagnostic.message.startswith("unclosed block"):
                unclosed = (segment, line_offset, diagnostic, header)
            continue
        assert tree is not None  # the loop above ends with a tree, or a failure handled here
        for block in tree:
            names = tuple(
                name
                for first, last, found in skipped_lines
                if block.span.line <= first and last <= block.span.end_line
                for name in found
            )
            blocks.append(dataclasses.replace(block, broken=names) if names else block)
    return syntax.SourceFile(path, text, tuple(blocks), tuple(broken)), diagnostics


def _skippable_lines(
    error: UnexpectedInput, segment: str, lexer: TokenMemory
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
    above = values_below_name(error, segment, lexer)
    if above is not None:
        start = above[0]  # `models` alone, its values below: skip both, one error
    if start is None or start <= (brace.line or 0):
        return None  # the header line, or an attribute on the header's line
    lines = segment.split("\n")
    depth = 0
    for number in range(start, len(lines) + 1):
        raw = _shapes().string_or_comment.sub('""', lines[number - 1]).strip()
        if raw.startswith("}"):
            return (start, number - 1) if start <= number - 1 and error_line <= number else None
        depth += raw.count("(") + raw.count("[") - raw.count(")") - raw.count("]")
        if number >= error_line and depth <= 0 and not raw.endswith(_shapes().line_goes_on):
            return start, number
    return None  # the attribute runs to the end of the text: nothing to resume from


def _attribute_names(segment: str, region: tuple[int, int]) -> tuple[str, ...]:
    """Names that may start an attribute on these lines (each `;`-separated part)."""
    names: list[str] = []
    for line in segment.split("\n")[region[0] - 1 : region[1]]:
        for part in _shapes().string_or_comment.sub('""', line).split(";"):
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


def _repaired_header(error: UnexpectedInput, segment: str) -> str | None:
    """`route chat extra {`: the segment with what comes between the name and the `{` blanked
    out (columns kept), when the syntax error is there; else None."""
    if not isinstance(error, UnexpectedToken) or error.token.line != 1:
        return None
    m = _shapes().header_with_extra.match(segment)
    if m is None or not m.start(1) <= (error.token.start_pos or 0) < m.end(1):
        return None
    return segment[: m.start(1)] + " " * (m.end(1) - m.start(1)) + segment[m.end(1) :]


def _stray_brace(error: UnexpectedInput) -> bool:
    """A `}` where a new block or the end of the file should come: it closes nothing."""
    return (
        isinstance(error, UnexpectedToken)
        and error.token.type == "RBRACE"
        and "$END" in error.expected
    )


def _nested_block(
    outer: Diagnostic,
    outer_header: syntax.BrokenBlock | None,
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


def _broken_header(segment: str, path: str, line_offset: int) -> syntax.BrokenBlock | None:
    """What a block that failed to parse declares, read from its header line."""
    m = _shapes().header_parts.match(segment)
    if m is None:
        return None
    kind, label = m.group(1), m.group(2)
    name = None
    if label is not None:
        name = syntax.Literal("string", label, _NO_SPAN).text if label.startswith('"') else label
    line = line_offset + 1
    end = m.end(2) if label is not None else m.end(1)
    return syntax.BrokenBlock(kind, name, Span(path, line, m.start(1) + 1, line, end + 1))


_NO_SPAN = Span("", 1, 1, 1, 1)


def _header_text(text: str, offset: int) -> tuple[str, int]:
    line_end = text.find("\n", offset)
    header = text[offset : line_end if line_end >= 0 else len(text)].split("{", 1)[0].strip()
    return header, text.count("\n", 0, offset) + 1


_BUILDER = AstBuilder()
