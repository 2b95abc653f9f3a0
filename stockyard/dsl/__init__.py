"""The pipeline language: parse, check and compile ``.pipe`` files.

Public API (the language knows modules and provider kinds only through the specs it is given;
:mod:`stockyard.catalog` binds it to the ones this build ships)::

    result = check_paths(["pipelines/"], modules, kinds)  # every diagnostic, and a Generation
    print(render_text(result.diagnostics, result.sources))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.generation import Generation, RouteSpec
from ..core.span import Span
from ..pricing import known_models, lookup
from .checker import CheckOptions, Program, check_sources
from .compiler import compile_program
from .diagnostics import Diagnostic, Label, Severity, render_text, summary, to_json
from .schema import ModuleSpec, ProviderKind

PIPE_SUFFIX = ".pipe"


class SourceError(OSError):
    """A path given to the checker cannot be read (missing, unreadable, not a .pipe file)."""


@dataclass(frozen=True)
class CheckResult:
    sources: Mapping[str, str]
    diagnostics: tuple[Diagnostic, ...]
    generation: Generation | None
    program: Program

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)


def collect_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand directories into their ``*.pipe`` files (recursively, sorted)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden entries are skipped: a Kubernetes ConfigMap volume keeps its real files in
            # a `..<timestamp>/` directory behind symlinks, which would load everything twice.
            files += sorted(
                p
                for p in path.rglob(f"*{PIPE_SUFFIX}")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise SourceError(f"{path}: not a file or directory")
        else:
            raise SourceError(f"{path}: no such file or directory")
    return files


def read_sources(files: Iterable[Path]) -> tuple[dict[str, str], list[Diagnostic]]:
    """Read files as UTF-8. Undecodable text is a diagnostic; an unreadable file raises."""
    sources: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for file in files:
        name = str(file)
        try:
            data = file.read_bytes()
        except OSError as error:
            raise SourceError(f"{name}: {error.strerror or error}") from None
        try:
            sources[name] = data.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError as error:
            # Check the file anyway, with each undecodable byte shown as U+FFFD, so that its
            # other problems are reported in the same run; point at the first bad byte.
            sources[name] = data.decode("utf-8", errors="replace").lstrip("\ufeff")
            before = data[: error.start].decode("utf-8").lstrip("\ufeff")
            line = before.count("\n") + 1
            column = len(before) - (before.rfind("\n") + 1) + 1
            bad = data[error.start : error.end]
            count = sources[name].count("\ufffd")
            more = f" ({count} places in this file)" if count > 1 else ""
            problems.append(
                Diagnostic(
                    "SY005",
                    Severity.ERROR,
                    "file is not valid UTF-8 text",
                    Span(name, line, column, line, column + 1),
                    f"byte {' '.join(f'0x{b:02x}' for b in bad)} is not UTF-8",
                    notes=(f"undecodable bytes are shown as `\ufffd`{more}",),
                    help="save the file as UTF-8 (it may have been saved as Latin-1 or Windows-1252)",
                )
            )
    return sources, problems


def check(
    sources: Mapping[str, str],
    modules: Mapping[str, ModuleSpec],
    kinds: Mapping[str, ProviderKind],
    options: CheckOptions = CheckOptions(),
    extra_diagnostics: Iterable[Diagnostic] = (),
) -> CheckResult:
    """Check against these modules and provider kinds and, when there are no errors, compile.
    Never raises on bad input."""
    if not options.known_prices or options.price_lookup is None:
        options = dataclasses.replace(
            options,
            known_prices=options.known_prices or known_models(),
            price_lookup=options.price_lookup or lookup,
        )
    # The collector is left alone: the gateway checks on reload in a worker thread, and pausing
    # it there would pause it for the threads serving requests too. A big pipeline allocates
    # millions of acyclic objects, which the collector only re-scans (about a third of the parse
    # time), so one-shot callers pause it themselves (the CLI does, for `check` and `routes`).
    program, diagnostics = check_sources(sources.items(), modules, kinds, options)
    extra = list(extra_diagnostics)
    if any(d.code == "SY005" for d in extra):
        # An undecodable byte outside a string is also an unexpected character: say it once.
        diagnostics = [d for d in diagnostics if not (d.code == "SY004" and "\ufffd" in d.message)]
    diagnostics = sorted([*extra, *diagnostics], key=Diagnostic.sort_key)
    generation = None
    if not any(d.is_error for d in diagnostics):
        generation = compile_program(program)
    return CheckResult(dict(sources), tuple(diagnostics), generation, program)


def check_paths(
    paths: Sequence[str | Path],
    modules: Mapping[str, ModuleSpec],
    kinds: Mapping[str, ProviderKind],
    options: CheckOptions = CheckOptions(),
) -> CheckResult:
    sources, problems = read_sources(collect_files(paths))
    return check(sources, modules, kinds, options, problems)


__all__ = [
    "CheckOptions",
    "CheckResult",
    "Diagnostic",
    "Generation",
    "Label",
    "RouteSpec",
    "Severity",
    "SourceError",
    "Span",
    "check",
    "check_paths",
    "collect_files",
    "read_sources",
    "render_text",
    "summary",
    "to_json",
]
