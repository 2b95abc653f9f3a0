"""Source positions: every AST node and every diagnostic carries a :class:`Span`."""

from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    """A region of one source file. Lines and columns are 1-based; ``end_column`` is exclusive.

    A named tuple rather than a frozen dataclass: a 10,000-line pipeline makes 130,000 of
    them while parsing, and a tuple is built in a third of the time (both are immutable)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to(self, other: Span) -> Span:
        """The span covering ``self`` through ``other`` (same file)."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }
