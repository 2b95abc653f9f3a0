"""Verify a ledger from the command line: read-only, in pages, with a progress bar on a TTY."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

from .ledger import COLUMNS, Verifier


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such database")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def head(path: Path) -> tuple[int, str] | None:
    with open_readonly(path) as conn:
        row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


def verify(
    path: Path, expect_head: str | None = None, progress: TextIO | None = None, page: int = 5000
) -> dict[str, Any]:
    verifier = Verifier(expect_head=expect_head)
    with open_readonly(path) as conn:
        total = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        last = 0
        while True:
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, page),
            ).fetchall()
            if not rows:
                break
            for row in rows:
                if not verifier.feed(row):
                    break
            if verifier.broken_at is not None:
                break
            last = rows[-1][0]
            if progress is not None and total:
                _bar(progress, verifier.checked, total)
    if progress is not None and total:
        _bar(progress, verifier.checked, total)
        progress.write("\n")
    return verifier.result()


def _bar(out: TextIO, done: int, total: int, width: int = 40) -> None:
    filled = int(width * done / total)
    out.write(f"\rverifying [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
    out.flush()


def default_progress() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None
