"""Diagnostics are data: a code, a severity, a message, spans, notes and a help line.

They are rendered separately (:func:`render_text`, :func:`to_json`) so that ``stockyard check``,
hot-reload failures and the admin API all show the same thing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..core.span import Span

JSON_FORMAT_VERSION = 1


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a short text, e.g. "first declared here"."""

    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span | None
    label: str = ""
    notes: tuple[str, ...] = ()
    help: str | None = None
    related: tuple[Label, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.severity.value}[{self.code}]: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "span": self.span.to_json() if self.span else None,
            "label": self.label,
            "notes": list(self.notes),
            "help": self.help,
            "related": [{"span": r.span.to_json(), "label": r.text} for r in self.related],
        }


def counts(diagnostics: Iterable[Diagnostic]) -> dict[str, int]:
    result = {"error": 0, "warning": 0}
    for d in diagnostics:
        result[d.severity.value] += 1
    return result


def to_json(diagnostics: Iterable[Diagnostic], files: Iterable[str] = ()) -> dict[str, object]:
    items = list(diagnostics)
    return {
        "version": JSON_FORMAT_VERSION,
        "files": list(files),
        "counts": counts(items),
        "diagnostics": [d.to_json() for d in items],
    }


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def severity(self, severity: Severity, text: str) -> str:
        return self.paint(text, "1;31" if severity is Severity.ERROR else "1;33")

    def gutter(self, text: str) -> str:
        return self.paint(text, "1;34")

    def bold(self, text: str) -> str:
        return self.paint(text, "1")


def render_text(
    diagnostics: Iterable[Diagnostic],
    sources: Mapping[str, str],
    *,
    color: bool = False,
) -> str:
    """Render like rustc: header, ``-->`` location, the source line and carets under the span."""
    return "".join(_render_one(d, sources, _Style(color)) + "\n\n" for d in diagnostics)


def _render_one(d: Diagnostic, sources: Mapping[str, str], style: _Style) -> str:
    head = style.severity(d.severity, f"{d.severity.value}[{d.code}]") + style.bold(
        f": {d.message}"
    )
    spans = [(d.span, d.label, "^")] if d.span else []
    spans += [(r.span, r.text, "-") for r in d.related]
    width = max((len(str(s.end_line)) for s, _, _ in spans), default=1)
    pad = " " * width
    lines = [head]
    for index, (span, text, mark) in enumerate(spans):
        arrow = "-->" if index == 0 else ":::"
        lines.append(f"{pad}{style.gutter(arrow)} {span}")
        lines.append(f"{pad} {style.gutter('|')}")
        lines += _snippet(span, text, mark, sources.get(span.file), width, style)
    trailer = [("note", n) for n in d.notes] + ([("help", d.help)] if d.help else [])
    if trailer and spans:
        lines.append(f"{pad} {style.gutter('|')}")
    for kind, text in trailer:
        lines.append(f"{pad} {style.gutter('=')} {style.bold(kind)}: {text}")
    return "\n".join(lines)


def _snippet(
    span: Span, label: str, mark: str, source: str | None, width: int, style: _Style
) -> list[str]:
    if source is None:
        return []
    all_lines = source.split("\n")
    if span.line > len(all_lines):
        return []
    raw = all_lines[span.line - 1].rstrip("\r")
    if span.end_line == span.line:
        end = max(span.end_column, span.column + 1)
    else:  # a multi-line span: underline to the end of its first line
        end = max(len(raw) + 1, span.column + 1)
    # Tabs are shown as four spaces; carets are placed by the expanded width.
    text = raw.expandtabs(4)
    start = len(raw[: span.column - 1].expandtabs(4)) + 1
    stop = max(len(raw[: end - 1].expandtabs(4)) + 1, start + 1)
    carets = " " * (start - 1) + mark * (stop - start)
    underline = style.severity(Severity.ERROR if mark == "^" else Severity.WARNING, carets)
    if label:
        underline += " " + (style.bold(label) if mark == "^" else label)
    gutter = style.gutter(f"{span.line:>{width}} |")
    return [f"{gutter} {text}".rstrip(), f"{' ' * width} {style.gutter('|')} {underline}"]


def summary(diagnostics: Iterable[Diagnostic], file_count: int) -> str:
    c = counts(diagnostics)
    parts = []
    if c["error"]:
        parts.append(f"{c['error']} error{'s' if c['error'] != 1 else ''}")
    if c["warning"]:
        parts.append(f"{c['warning']} warning{'s' if c['warning'] != 1 else ''}")
    files = f"{file_count} file{'s' if file_count != 1 else ''}"
    if not parts:
        return f"ok: {files} checked, no problems"
    return f"{' and '.join(parts)} in {files}"
