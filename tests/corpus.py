"""Pipelines to throw at the lexer and the parser: every shipped and golden one, and mutants."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pipeline_texts() -> list[str]:
    """examples/, tests/check/ and pipelines/ (undecodable bytes shown as U+FFFD)."""
    files = sorted(ROOT.glob("examples/**/*.pipe")) + sorted(ROOT.glob("tests/check/**/*.pipe"))
    files += sorted(ROOT.glob("pipelines/*.pipe"))
    return [f.read_bytes().decode("utf-8", "replace") for f in files]


def mutants(
    texts: Sequence[str],
    pieces: Sequence[str],
    count: int,
    *,
    seed: int,
    edits: int = 4,
    insert_share: float = 0.5,
) -> Iterator[str]:
    """``count`` texts, each one of ``texts`` with 1 to ``edits`` random edits: a piece inserted
    (``insert_share`` of the edits) or a few characters deleted."""
    rng = random.Random(seed)
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, edits)):
            at = rng.randrange(len(text) + 1)
            if rng.random() < insert_share:
                text = text[:at] + rng.choice(pieces) + text[at:]
            else:
                text = text[:at] + text[at + rng.randint(1, 5) :]
        yield text
