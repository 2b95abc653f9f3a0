"""The checker must never crash: whatever the text, ``check`` returns diagnostics or a generation.

Two generators:

* a Hypothesis strategy that strings together tokens of the language (keywords, names,
  literals, punctuation, newlines, comments) with junk and unicode;
* seeded mutations (deletions, duplications, swaps and insertions of characters, tokens and
  lines) of valid pipelines: the one written below, and the ``.pipe`` files of ``examples/`` and
  ``pipelines/`` when they exist.

For every input: ``check`` does not raise; a result without errors has a generation (and one with
errors has none); every diagnostic's spans lie within the file; ``render_text`` and ``to_json``
do not raise.

``STOCKYARD_FUZZ_SCALE=10 pytest tests/test_fuzz.py`` runs ten times as many cases.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockyard.catalog import check
from stockyard.dsl import CheckOptions, CheckResult, Span, render_text, to_json

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("STOCKYARD_FUZZ_SCALE", "1"))
OPTIONS = CheckOptions(check_env=False)

# --- what every result must satisfy ---------------------------------------------------------


def _span_ok(span: Span, sources: dict[str, str]) -> str | None:
    if span.file not in sources:
        return f"span in unknown file {span.file!r}"
    lines = sources[span.file].count("\n") + 1
    if not 1 <= span.line <= lines + 1:
        return f"line {span.line} outside 1..{lines + 1}"
    if not span.line <= span.end_line <= lines + 1:
        return f"end_line {span.end_line} outside {span.line}..{lines + 1}"
    if span.column < 1 or span.end_column < 1:
        return f"column {span.column}..{span.end_column} below 1"
    if span.end_line == span.line and span.end_column < span.column:
        return f"end_column {span.end_column} before column {span.column}"
    return None


def assert_sound(sources: dict[str, str], result: CheckResult) -> None:
    """Every property a check result must have, whatever the input."""
    assert isinstance(result, CheckResult)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        assert result.generation is None, "errors, yet a generation was compiled"
    else:
        assert result.generation is not None, "no errors, yet no generation"
        generation = result.generation
        assert [r.name for r in generation.routes] == [r.name for r in result.program.routes]
        for route in generation.routes:
            route.chain_text()
            for path in route.paths:
                generation.route_for(path, "gpt-4o-mini")
    for d in result.diagnostics:
        assert d.code.startswith("SY") and d.message, d
        spans = ([d.span] if d.span else []) + [label.span for label in d.related]
        for span in spans:
            problem = _span_ok(span, sources)
            assert problem is None, f"{d}: {problem}"
    for color in (False, True):
        text = render_text(result.diagnostics, sources, color=color)
        assert isinstance(text, str)
    json.dumps(to_json(result.diagnostics, sources))


def check_text(text: str, name: str = "f.pipe") -> CheckResult:
    sources = {name: text}
    try:
        result = check(sources, OPTIONS)
    except Exception as error:  # pragma: no cover - only on a bug
        raise AssertionError(f"check raised {error!r} on:\n{text}") from error
    try:
        assert_sound(sources, result)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- input ---\n{text}") from None
    return result


# --- (a) random token soup ------------------------------------------------------------------

KEYWORDS = ["provider", "route", "price", "defaults", "block", "routes"]
ATTRIBUTES = [
    "kind", "base_url", "api_key", "timeout", "connect_timeout", "max_connections", "header",
    "path", "models", "chain", "failover", "retry", "cap", "modules", "input", "output",
    "cached", "latency", "reply", "fail_rate", "chunk_delay", "api_version", "pth",
]  # fmt: skip
WORDS = [
    "openai", "anthropic", "azure", "gemini", "mock", "groq", "ollama", "chat", "x", "a-b",
    "a.b", "_", "on", "off", "per", "daily", "monthly", "project", "key", "backoff",
    "max_backoff", "first_token", "connect", "passthrough", "none", "trace", "audit", "cache",
    "auth", "rate_limit", "cost_cap", "prompt_guard", "redact", "model_alias", "max_tokens",
    "headers", "ip_allow", "ttl", "requests", "tokens", "weight", "model", "limit", "action",
    "map", "set", "remove", "allow", "deny", "kinds", "true", "false", "env", "timeout",
    "unpriced", "block", "email",
]  # fmt: skip
LITERALS = [
    "30s", "250ms", "5m", "1h", "7d", "0s", "0.5s", "99999h", "$25", "$0", "$0.15/1M",
    "$0.00015/1K", "$1/0", "$3/1k", "$1.5", "60/min", "100k/min", "0/s", "1M/day", "5xx",
    "4xx", "429", "200", "0", "2", "3", "1000000", "0.5", "1.0", "10MiB", "16KiB", "0B",
    "/v1/chat/completions", "/v1/x", "/", "/v1/{id}/*", '"str"', '""', '"gpt-4o*"',
    '"gpt-4.1?"', '"*"', '"https://api.example.com/v1"', '"10.0.0.0/8"', '"::1"', '"a\\"b"',
    '"\\n"', '"ünïcødé"', 'env("X")', 'env("OPENAI_API_KEY")', 'env("")', 'env("1X")',
    "env()", "env(X)",
]  # fmt: skip
PUNCTUATION = ["{", "}", "(", ")", "[", "]", ",", ";", ":", "->", "|", "\\\n"]
LAYOUT = [" ", "  ", "\t", "\n", "\n\n", "\r\n", "# a comment\n", "#", "\n  "]
JUNK = ["=", "'", '"', "$", "@", "%", "&", "*", "?", "!", "\\", "`", "~", "^", "<", ">", "+", "."]
UNICODE = ["é", "→", "—", "\u00a0", "\ufeff", "\u200b", "日本", "🐄", "\x00", "\x0b", "\u2028"]

TOKEN = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(WORDS),
    st.sampled_from(LITERALS),
    st.sampled_from(PUNCTUATION),
    st.sampled_from(LAYOUT),
    st.sampled_from(JUNK),
    st.sampled_from(UNICODE),
    st.text(max_size=3),
)
SEPARATOR = st.sampled_from(["", " ", " ", " ", "\n", "  "])


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(TOKEN, SEPARATOR), max_size=60))
    return "".join(token + sep for token, sep in parts)


ATOM = st.one_of(st.sampled_from(WORDS), st.sampled_from(LITERALS))
VALUE = st.recursive(
    ATOM,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(
            st.sampled_from(WORDS),
            st.lists(st.tuples(st.sampled_from(["", *WORDS[40:]]), inner), max_size=3),
        ).map(lambda c: c[0] + "(" + ", ".join(f"{k}: {v}" if k else v for k, v in c[1]) + ")"),
        st.lists(inner, min_size=2, max_size=3).map(" -> ".join),
        st.lists(inner, min_size=2, max_size=3).map(" | ".join),
    ),
    max_leaves=6,
)
LABELS = {"provider": " openai", "route": " chat", "price": ' "gpt-4o-mini"', "defaults": ""}


@st.composite
def block_shaped(draw: st.DrawFn) -> str:
    """Text shaped like blocks (`kind name { attr values… }`) with well-formed values, so that
    the checks past the parser run too: most token soups never get that far."""
    blocks = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from([*LABELS, *LABELS, *LABELS, "rout"]))
        label = LABELS.get(kind, " x")
        if draw(st.integers(0, 4)) == 0:
            label = draw(st.sampled_from(["", " chat", " openai", ' "gpt-4o-mini"', " x", " a-b"]))
        lines = []
        for _ in range(draw(st.integers(0, 6))):
            name = draw(st.sampled_from(ATTRIBUTES))
            values = draw(st.lists(VALUE, max_size=4))
            if draw(st.integers(0, 9)) == 0:
                values.append(draw(st.sampled_from(PUNCTUATION)))
            lines.append("  " + " ".join([name, *values]))
        blocks.append(f"{kind}{label} {{\n" + "\n".join(lines) + "\n}\n")
    return draw(st.sampled_from(["", "\n", "# c\n"])) + "".join(blocks)


_FUZZ_SETTINGS = settings(
    max_examples=int(250 * SCALE),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ_SETTINGS
@given(token_soup())
def test_token_soup_never_crashes(text: str) -> None:
    check_text(text)


@settings(_FUZZ_SETTINGS, max_examples=int(150 * SCALE))
@given(block_shaped())
def test_block_shaped_text_never_crashes(text: str) -> None:
    check_text(text)


@settings(max_examples=int(100 * SCALE), deadline=None, database=None,
          derandomize=bool(os.environ.get("CI")))  # fmt: skip
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_crashes(text: str) -> None:
    check_text(text)


# --- pathological inputs ---------------------------------------------------------------------

DIGITS = "1" * 5000  # past Python's 4,300-digit limit for int(str)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("route r {\n  modules " + "[" * 100 + "]" * 100 + "\n}\n", id="list-100"),
        pytest.param("route r {\n  modules " + "[" * 1000 + "]" * 1000 + "\n}\n", id="list-1000"),
        pytest.param("route r {\n  chain " + "p(" * 300 + ")" * 300 + "\n}\n", id="call-300"),
        pytest.param("route r {\n  a " + "x(k: " * 300 + "1" + ")" * 300 + "\n}\n", id="named-300"),
        pytest.param("a " + "[" * 5000 + "]" * 5000, id="list-5000-outside-block"),
        pytest.param("route r {\n  a " + "x -> " * 2000 + "x\n}\n", id="chain-2000"),
        pytest.param("route r {\n  a " + "x | " * 2000 + "x\n}\n", id="tier-2000"),
        pytest.param("route r {\n  retry " + DIGITS + "\n}\n", id="int-retry"),
        pytest.param(
            "provider p { kind openai }\nroute r { path /a; chain p(weight: " + DIGITS + ") }",
            id="int-weight",
        ),
        pytest.param("route r {\n  failover on [" + DIGITS + "]\n}\n", id="int-status"),
        pytest.param(
            'price "m" {\n  input $1/' + DIGITS + "M; output $1/1M\n}\n", id="int-price-per"
        ),
        pytest.param("route r {\n  cap daily $" + DIGITS + "\n}\n", id="money-digits"),
        pytest.param("route r {\n  timeout " + DIGITS + "s\n}\n", id="duration-digits"),
        pytest.param(
            "route r {\n  modules [trace(max_body: " + DIGITS + "B)]\n}\n", id="size-digits"
        ),
        pytest.param("route r {\n  models " + '"' + "x" * 100_000 + '"\n}\n', id="long-string"),
        pytest.param("route r { path /a; chain p }\n" * 2000, id="2000-duplicate-routes"),
        pytest.param("{" * 3000 + "}" * 3000, id="braces"),
        pytest.param("\n" * 50_000, id="blank-lines"),
        pytest.param("#" * 100_000, id="long-comment"),
        pytest.param("\\\n" * 1000, id="continuations"),
        pytest.param("route r {\r\n  path /a\r\n}\r\n", id="crlf"),
        pytest.param("route r {\r  path /a\r}\r", id="cr-only"),
    ],
)
def test_pathological_inputs(text: str) -> None:
    check_text(text)


# --- (b) mutations of valid pipelines -------------------------------------------------------

VALID = """\
# A pipeline that uses every kind of block and most attributes.
provider openai {
  kind      openai
  api_key   env("OPENAI_API_KEY")
  timeout   60s
  connect_timeout 5s
  max_connections 50
  header    "X-Team" "search"
}

provider claude {
  kind    anthropic
  api_key passthrough
}

provider local { kind ollama; api_key none }

provider az {
  kind     azure
  base_url "https://example.openai.azure.com"
  api_key  env("AZURE_KEY")
  api_version "2024-10-21"
}

price "my-model" {
  input $0.00015/1K  output $0.60/1M
  cached $0.075/1M
}

defaults {
  failover on [5xx, 429, timeout, connect]
  retry    2 backoff 100ms max_backoff 5s
  timeout  30s first_token 5s
  modules  [trace, audit]
}

route chat {
  path    /v1/chat/completions
  models  "gpt-4o*", "gpt-4.1?", "my-model"
  chain   openai(model: "gpt-4o-mini") | local(weight: 3) ->
          claude(model: "claude-3-5-haiku-latest")
  cap     daily $25 monthly $400 per key
  modules [trace, audit, auth, rate_limit(requests: 60/min, tokens: 100k/min, per: key),
           cost_cap(unpriced: allow), max_tokens(limit: 4096), cache(ttl: 10m)]
}

route messages {
  path    /v1/messages
  chain   claude -> az
  failover off
  retry   0
  timeout 2m
  modules [trace, model_alias(map: ["fast" -> "gpt-4o-mini"]), prompt_guard(action: flag),
           redact(kinds: [email]), headers(set: ["X-A" -> env("X_A")], remove: ["x-debug"]),
           ip_allow(allow: ["10.0.0.0/8", "::1"])]
}

route rest {
  path /v1/chat/completions, /v1/embeddings; chain local
}
"""

_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|->|\s+|[A-Za-z0-9_$./{}*:-]+|.',
)


def _corpus() -> list[tuple[str, dict[str, str], str]]:
    """(label, the files checked together, the file to mutate).

    Each directory directly under ``examples/`` is one pipeline (its files are checked
    together, as ``stockyard check examples/NAME/`` does); so is ``pipelines/``.
    """
    corpus = [("builtin", {"f.pipe": VALID}, "f.pipe")]
    groups: list[Path] = []
    if (ROOT / "examples").is_dir():
        groups += sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
    if (ROOT / "pipelines").is_dir():
        groups.append(ROOT / "pipelines")
    for group in groups:
        files = sorted(group.rglob("*.pipe"))
        sources = {str(p.relative_to(ROOT)): p.read_text("utf-8") for p in files}
        for name in sources:
            corpus.append((name, sources, name))
    return corpus


def _mutate(text: str, rng: random.Random) -> str:
    level = rng.choice(("char", "char", "token", "token", "token", "line"))
    if level == "char":
        units = list(text)
    elif level == "token":
        units = _TOKEN.findall(text)
    else:
        units = text.splitlines(keepends=True)
    if not units:
        return text
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not units:
            break
        i = rng.randrange(len(units))
        op = rng.choice(("delete", "delete", "duplicate", "swap", "swap_near", "insert", "replace"))
        if op == "delete":
            del units[i]
        elif op == "duplicate":
            units.insert(i, units[i])
        elif op == "swap":
            j = rng.randrange(len(units))
            units[i], units[j] = units[j], units[i]
        elif op == "swap_near" and i + 1 < len(units):
            units[i], units[i + 1] = units[i + 1], units[i]
        elif op in ("insert", "replace"):
            new = rng.choice((*PUNCTUATION, *JUNK, *LITERALS, *WORDS, *UNICODE, "\n", "{", "}"))
            if op == "insert":
                units.insert(i, new)
            else:
                units[i] = new
    return "".join(units)


def test_builtin_pipeline_is_valid() -> None:
    """The mutation seed must itself be clean, or the mutants test little."""
    result = check_text(VALID)
    assert not result.errors, render_text(result.errors, {"f.pipe": VALID})
    assert [r.name for r in result.generation.routes] == ["chat", "messages", "rest"]


MUTANTS = int(3000 * SCALE)
TIME_BUDGET = 15.0 * SCALE


CORPUS = _corpus()


@pytest.mark.parametrize("label,sources,target", CORPUS, ids=[c[0] for c in CORPUS])
def test_mutants_never_crash(label: str, sources: dict[str, str], target: str) -> None:
    corpus = CORPUS
    # The built-in pipeline gets most mutants; each file of examples/ and pipelines/ a share.
    count = MUTANTS // 2 if label == "builtin" else max(50, MUTANTS // 2 // max(1, len(corpus) - 1))
    budget = TIME_BUDGET / 2 if label == "builtin" else TIME_BUDGET / 2 / max(1, len(corpus) - 1)
    rng = random.Random(f"stockyard-fuzz:{label}")
    original = sources[target]
    started = time.monotonic()
    clean = 0
    for n in range(count):
        text = original
        for _ in range(rng.choice((1, 1, 2, 4))):
            text = _mutate(text, rng)
        mutated = {**sources, target: text}
        try:
            result = check(mutated, OPTIONS)
            assert_sound(mutated, result)
        except Exception as error:
            raise AssertionError(
                f"mutant {n} of {label} ({type(error).__name__}: {error}):\n{text}"
            ) from error
        clean += not result.errors
        if time.monotonic() - started > budget and n >= 50:
            break
    # Some mutants (e.g. a swapped comment or a duplicated blank line) stay valid.
    assert clean < count
