"""Golden tests for ``stockyard check``: the diagnostics catalogue.

Each input in ``tests/check/`` is checked by the real command line, in a subprocess, from the
repository root::

    stockyard check --no-env --color never tests/check/NAME.pipe

and its standard output (every diagnostic and the summary line) must equal
``tests/check/NAME.expected`` exactly. An input is either a file ``NAME.pipe`` or, for problems
that span files, a directory ``NAME/`` of ``.pipe`` files (checked together).

The exit status must agree with the summary line: 1 when there are errors, or warnings under
``--strict``; 0 otherwise. Nothing may be written to standard error (a traceback is a bug).

Extra arguments
    The first line of an input (for a directory: of its first ``.pipe`` file by name) may be a
    comment ``# args: FLAG…``. The flags are added to the command line, e.g.
    ``# args: --strict``. One pseudo-flag exists: ``--env`` drops ``--no-env``, so that the
    environment-variable checks (SY304) run. The environment is controlled: only ``PATH``,
    ``NO_COLOR=1`` and ``STOCKYARD_GOLDEN_SET=1`` are set, so ``env("STOCKYARD_GOLDEN_SET")``
    is always set and any other variable is not.

Regenerating
    ``STOCKYARD_UPDATE_GOLDEN=1 pytest tests/test_check_golden.py`` rewrites every
    ``.expected`` file from the current output. Read the diff before committing it: these files
    are the catalogue of error messages, and each message must name the problem and its fix.

Every diagnostic code in the source (``"SYnnn"``) must appear in at least one ``.expected`` file,
so a new code cannot be added without a golden test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK_DIR = ROOT / "tests" / "check"
SOURCE_DIR = ROOT / "stockyard"
UPDATE = os.environ.get("STOCKYARD_UPDATE_GOLDEN") == "1"

ARGS_DIRECTIVE = re.compile(r"#\s*args:(.*)")
SUMMARY = re.compile(
    r"^(?:ok: \d+ files? checked, no problems"
    r"|(?:(?P<errors>\d+) errors?)?(?: and )?(?:(?P<warnings>\d+) warnings?)? in \d+ files?)$"
)
CODE = re.compile(r'"(SY\d{3})"')


def _inputs() -> list[Path]:
    found = [p for p in CHECK_DIR.iterdir() if p.suffix == ".pipe" and p.is_file()]
    found += [p for p in CHECK_DIR.iterdir() if p.is_dir() and any(p.glob("*.pipe"))]
    return sorted(found)


def _expected_path(case: Path) -> Path:
    return (
        case.with_suffix(".expected") if case.is_file() else case.parent / f"{case.name}.expected"
    )


def _extra_args(case: Path) -> list[str]:
    first_file = case if case.is_file() else sorted(case.glob("*.pipe"))[0]
    with first_file.open("rb") as handle:
        first_line = handle.readline().decode("utf-8", errors="replace").strip()
    m = ARGS_DIRECTIVE.fullmatch(first_line)
    return m.group(1).split() if m else []


def _command(case: Path) -> tuple[list[str], bool]:
    extra = _extra_args(case)
    flags = ["--no-env", "--color", "never"]
    if "--env" in extra:
        flags.remove("--no-env")
        extra = [a for a in extra if a != "--env"]
    relative = case.relative_to(ROOT).as_posix()
    return [sys.executable, "-m", "stockyard", "check", *flags, *extra, relative], (
        "--strict" in extra
    )


def _environment() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "NO_COLOR": "1", "STOCKYARD_GOLDEN_SET": "1"}
    for name in ("SYSTEMROOT", "PYTHONPATH"):  # needed to start Python on some systems
        if name in os.environ:
            env[name] = os.environ[name]
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _expected_status(output: str, strict: bool) -> int:
    summary = output.rstrip("\n").rsplit("\n", 1)[-1]
    m = SUMMARY.match(summary)
    assert m, f"the last line is not a summary: {summary!r}"
    if m.group("errors"):
        return 1
    if strict and m.group("warnings"):
        return 1
    return 0


CASES = _inputs()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_output(case: Path) -> None:
    command, strict = _command(case)
    run = subprocess.run(
        command,
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        timeout=60,
    )
    stdout = run.stdout.decode("utf-8")
    stderr = run.stderr.decode("utf-8", errors="replace")
    assert stderr == "", f"stockyard check wrote to stderr:\n{stderr}"
    expected_file = _expected_path(case)
    if UPDATE:
        expected_file.write_text(stdout, encoding="utf-8", newline="\n")
    assert expected_file.exists(), (
        f"{expected_file.name} is missing; run STOCKYARD_UPDATE_GOLDEN=1 pytest {__file__}"
    )
    expected = expected_file.read_text(encoding="utf-8")
    assert stdout == expected, (
        f"output of `{' '.join(command[2:])}` differs from {expected_file.name} "
        "(STOCKYARD_UPDATE_GOLDEN=1 rewrites it; review the diff)"
    )
    assert run.returncode == _expected_status(stdout, strict), (
        f"exit status {run.returncode} does not match the summary line"
    )


def test_every_expected_file_has_an_input() -> None:
    inputs = {_expected_path(c) for c in CASES}
    orphans = sorted(p.name for p in CHECK_DIR.glob("*.expected") if p not in inputs)
    assert not orphans, f".expected files without an input: {orphans}"


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in SOURCE_DIR.rglob("*.py"):
        codes |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return codes


def test_every_code_has_a_golden_test() -> None:
    codes = _codes_in_source()
    assert codes, "no diagnostic codes found in the source"
    shown: set[str] = set()
    for expected in CHECK_DIR.glob("*.expected"):
        shown |= set(
            re.findall(r"^(?:error|warning)\[(SY\d{3})\]", expected.read_text("utf-8"), re.M)
        )
    missing = sorted(codes - shown)
    assert not missing, f"codes without a golden test in tests/check/: {missing}"


def test_catalogue_is_broad() -> None:
    broken = [c for c in CASES if "ok: " not in _expected_path(c).read_text("utf-8")]
    clean = [c for c in CASES if c not in broken]
    assert len(broken) >= 45 and len(clean) >= 5, (len(broken), len(clean))
