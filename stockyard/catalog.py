"""What this build of Stockyard knows — its modules and provider kinds — and the pipeline
checker bound to them. The language itself (:mod:`stockyard.dsl`) knows neither: it checks
against whatever specs it is given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from . import dsl
from .dsl import CheckOptions, CheckResult, Diagnostic
from .modules import REGISTRY
from .providers import KINDS


def check(
    sources: Mapping[str, str],
    options: CheckOptions = CheckOptions(),
    extra_diagnostics: Iterable[Diagnostic] = (),
) -> CheckResult:
    """Check (and, with no errors, compile) pipeline sources: ``{file name: text}``."""
    return dsl.check(sources, REGISTRY, KINDS, options, extra_diagnostics)


def check_paths(paths: Sequence[str | Path], options: CheckOptions = CheckOptions()) -> CheckResult:
    """Check the ``.pipe`` files at these paths (directories are searched recursively)."""
    return dsl.check_paths(paths, REGISTRY, KINDS, options)
