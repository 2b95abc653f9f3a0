"""'Did you mean …?' suggestions by edit distance."""

from __future__ import annotations

from collections.abc import Iterable


def distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions."""
    if a == b:
        return 0
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _shared_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest candidate within a distance that scales with the word's length."""
    best: tuple[int, str] | None = None
    limit = max(1, min(3, len(word) // 3))
    lowered = word.lower()
    for candidate in sorted(set(candidates)):
        other = candidate.lower()
        if abs(len(other) - len(lowered)) > limit:
            d = limit + 1  # the distance is at least the difference in length: too far
        else:
            d = 0 if other == lowered else distance(lowered, other)
        shared = _shared_prefix(lowered, other)
        if shared >= 4 and shared >= len(lowered) - 2:
            d = min(d, limit)  # a shortened word: `passthru` for `passthrough`
        if d <= limit and (best is None or d < best[0]):
            best = (d, candidate)
    return best[1] if best else None


def did_you_mean(
    word: str, candidates: Iterable[str], where: dict[str, str] | None = None
) -> str | None:
    match = closest(word, candidates)
    if match is None:
        return None
    location = f" (declared at {where[match]})" if where and match in where else ""
    return f"did you mean `{match}`?{location}"
