"""The shipped pricing table and its model-id matching."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockyard.pricing import SEPARATORS, ModelPrice, cost, known_models, lookup, table

MODELS = table()["models"]


@dataclass(frozen=True)
class Spec:
    """Shaped like a compiled ``price`` block: anything with input/output/cached works."""

    input: Decimal
    output: Decimal
    cached: Decimal


def price(model: str, i: str, o: str, c: str | None = None) -> ModelPrice:
    return ModelPrice(model, Decimal(i), Decimal(o), Decimal(c if c is not None else i))


# --- the table itself -------------------------------------------------------------------


def test_as_of_is_an_iso_date_not_in_the_future() -> None:
    as_of = date.fromisoformat(table()["as_of"])
    assert date(2024, 1, 1) <= as_of <= date(2026, 11, 26)


def test_unit_and_notes() -> None:
    assert table()["unit"] == "USD per 1M tokens"
    assert table()["notes"], "tiered prices must be explained in notes"


def test_at_least_70_models_from_at_least_8_providers() -> None:
    assert len(MODELS) >= 70
    providers = {entry["provider"] for entry in MODELS.values()}
    assert len(providers) >= 8, providers


def test_every_provider_names_its_source() -> None:
    sources = table()["sources"]
    for model, entry in MODELS.items():
        assert entry["provider"] in sources, model
    assert all(isinstance(text, str) and text.strip() for text in sources.values())


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_price_is_an_exact_non_negative_decimal(model: str) -> None:
    entry = MODELS[model]
    assert set(entry) <= {"input", "output", "cached", "provider"}, entry
    for field in ("input", "output", "cached"):
        if field not in entry:
            assert field == "cached"
            continue
        value = entry[field]
        # Written with a decimal point, so json parses it with parse_float=Decimal (an int
        # literal would come back as int, a float would be inexact).
        assert type(value) is Decimal, (model, field, value)
        assert value.is_finite() and value >= 0, (model, field, value)
    assert entry["input"] > 0 or model.startswith("text-embedding"), model
    if "cached" in entry:
        assert entry["cached"] <= entry["input"], f"{model}: a cache read costing more than input"


def test_ids_are_unique_ignoring_case_and_have_no_stray_whitespace() -> None:
    lowered = [model.lower() for model in MODELS]
    assert len(set(lowered)) == len(lowered)
    assert all(model == model.strip() and " " not in model for model in MODELS)


def test_json_has_no_binary_floats() -> None:
    text = resources.files("stockyard.pricing").joinpath("prices.json").read_text("utf-8")
    data = json.loads(text, parse_float=Decimal)
    assert data == table()


def test_known_models_is_the_table() -> None:
    assert known_models() == frozenset(MODELS)
    assert "gpt-4o-mini" in known_models()


def test_brief_models_are_priced() -> None:
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o4-mini",
        "gpt-5",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "gpt-3.5-turbo",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-3-haiku",
        "claude-3-opus",
        "gemini-1.5-flash",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "deepseek-chat",
        "deepseek-reasoner",
    ):
        assert lookup(model) is not None, model
    assert MODELS["deepseek-chat"]["cached"] < MODELS["deepseek-chat"]["input"]
    assert MODELS["claude-3-5-haiku"]["cached"] == Decimal("0.08")


# --- matching ---------------------------------------------------------------------------


def test_exact_id() -> None:
    found = lookup("gpt-4o-mini")
    assert found == price("gpt-4o-mini", "0.15", "0.60", "0.075")


@pytest.mark.parametrize(
    ("requested", "base"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("gemini-2.5-flash-lite-preview-09-2025", "gemini-2.5-flash-lite"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("grok-4.20-0309-reasoning", "grok-4.20"),
        ("grok-4-1-fast-non-reasoning", "grok-4-1-fast"),
    ],
)
def test_dated_ids_match_the_right_base(requested: str, base: str) -> None:
    found = lookup(requested)
    assert found is not None and found.model == base


def test_longest_prefix_wins_never_the_shorter_family() -> None:
    mini = lookup("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.model == "gpt-4o-mini"
    assert mini.input != MODELS["gpt-4o"]["input"]


def test_exact_row_beats_a_prefix_row() -> None:
    old = lookup("gpt-4o-2024-05-13")
    assert old is not None and old.model == "gpt-4o-2024-05-13"
    assert old.input == Decimal("5.00")


@pytest.mark.parametrize("model", ["gpt-4oo", "gpt-4o_mini", "gpt-4.10", "o1x", "claude-opus-4x"])
def test_a_prefix_must_end_at_a_separator(model: str) -> None:
    assert lookup(model) is None


@pytest.mark.parametrize(
    "model", ["", "totally-unknown-model", "gpt", "claude", "gemini", "llama", "-", "/", "a/"]
)
def test_unknown_model_is_none_never_zero(model: str) -> None:
    assert lookup(model) is None


def test_case_insensitive_table_match() -> None:
    found = lookup("GPT-4o-Mini-2024-07-18")
    assert found is not None and found.model == "gpt-4o-mini"
    together = lookup("meta-llama/llama-3.3-70b-instruct-turbo")
    assert together is not None and together.model == "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def test_provider_prefixed_ids() -> None:
    for requested, base in [
        ("openai/gpt-4o", "gpt-4o"),
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("openrouter/anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
    ]:
        found = lookup(requested)
        assert found is not None and found.model == base, requested


def test_ids_that_contain_a_slash_match_whole_first() -> None:
    found = lookup("openai/gpt-oss-120b")
    assert found is not None and found.model == "openai/gpt-oss-120b"
    assert MODELS["openai/gpt-oss-120b"]["provider"] == "groq"


def test_a_prefix_never_stops_inside_the_namespace() -> None:
    # "sonar" is a key, but "sonar-labs/" is a namespace, not a dated sonar id.
    assert lookup("sonar-labs/some-model") is None


def test_missing_cached_price_bills_cached_tokens_at_input() -> None:
    found = lookup("gpt-4-turbo")
    assert found is not None and "cached" not in MODELS["gpt-4-turbo"]
    assert found.cached == found.input


# --- overrides --------------------------------------------------------------------------


def test_exact_override_beats_the_table() -> None:
    overrides = {"gpt-4o-mini": Spec(Decimal("1"), Decimal("2"), Decimal("0.5"))}
    found = lookup("gpt-4o-mini", overrides)
    assert found == ModelPrice("gpt-4o-mini", Decimal("1"), Decimal("2"), Decimal("0.5"))


def test_prefix_override_beats_the_same_table_prefix() -> None:
    overrides = {"gpt-4o": Spec(Decimal("9"), Decimal("9"), Decimal("9"))}
    found = lookup("gpt-4o-2024-08-06", overrides)
    assert found is not None and found.input == Decimal("9")


def test_a_longer_table_id_beats_a_shorter_override() -> None:
    overrides = {"gpt-4o": Spec(Decimal("9"), Decimal("9"), Decimal("9"))}
    found = lookup("gpt-4o-mini-2024-07-18", overrides)
    assert found is not None and found.model == "gpt-4o-mini"
    assert found.input == Decimal("0.15")


def test_a_longer_override_beats_a_shorter_table_id() -> None:
    overrides = {"gpt-4o-mini-2024-07-18": Spec(Decimal("3"), Decimal("4"), Decimal("3"))}
    assert lookup("gpt-4o-mini-2024-07-18", overrides) == ModelPrice(
        "gpt-4o-mini-2024-07-18", Decimal("3"), Decimal("4"), Decimal("3")
    )


def test_exact_table_id_beats_a_prefix_override() -> None:
    overrides = {"gpt-4o": Spec(Decimal("9"), Decimal("9"), Decimal("9"))}
    found = lookup("gpt-4o-mini", overrides)
    assert found is not None and found.input == Decimal("0.15")


def test_override_prices_an_unknown_model_and_its_dated_ids() -> None:
    overrides = {"my-local-llm": price("my-local-llm", "0.01", "0.02")}
    assert lookup("my-local-llm", overrides) == overrides["my-local-llm"]
    dated = lookup("my-local-llm-2026-01-01", overrides)
    assert dated is not None and dated.model == "my-local-llm"
    assert lookup("my-local-llm") is None  # the shipped table alone does not know it


def test_override_through_a_provider_prefix() -> None:
    overrides = {"my-local-llm": price("my-local-llm", "0.01", "0.02")}
    found = lookup("ollama/my-local-llm", overrides)
    assert found is not None and found.model == "my-local-llm"


def test_override_written_in_lower_case_matches_any_case() -> None:
    overrides = {"my-model": price("my-model", "1", "1")}
    found = lookup("My-Model", overrides)
    assert found is not None and found.model == "my-model"


def test_overrides_do_not_leak_into_later_lookups() -> None:
    lookup("gpt-4o", {"gpt-4o": Spec(Decimal("9"), Decimal("9"), Decimal("9"))})
    found = lookup("gpt-4o")
    assert found is not None and found.input == Decimal("2.50")


# --- matching agrees with a brute-force reading of the rule -----------------------------


def brute_force(model: str) -> str | None:
    """The rule, read literally: exact id, else longest separator-bounded prefix, else strip."""
    keys = {key.lower(): key for key in MODELS}
    while model:
        lowered = model.lower()
        if lowered in keys:
            return keys[lowered]
        start = lowered.rfind("/") + 1
        best = None
        for key in keys:
            if (
                start < len(key) < len(lowered)
                and lowered.startswith(key)
                and lowered[len(key)] in SEPARATORS
                and (best is None or len(key) > len(best))
            ):
                best = key
        if best is not None:
            return keys[best]
        head, slash, rest = model.partition("/")
        if not slash or not head:
            return None
        model = rest
    return None


suffixes = st.text(alphabet="-:@0123456789abcdefmini.", min_size=0, max_size=14)


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from(sorted(MODELS)), suffix=suffixes, namespace=st.sampled_from(["", "x/"]))
def test_lookup_matches_the_brute_force_rule(base: str, suffix: str, namespace: str) -> None:
    requested = namespace + base + suffix
    found = lookup(requested)
    assert (found.model if found else None) == brute_force(requested)


def test_every_key_with_a_dated_suffix_maps_to_itself_or_a_longer_key() -> None:
    for key in MODELS:
        found = lookup(key + "-2099-12-31")
        assert found is not None
        assert found.model == key, (key, found.model)


# --- cost -------------------------------------------------------------------------------


def test_cost_of_1000_prompt_tokens_of_gpt_4o_mini() -> None:
    mini = lookup("gpt-4o-mini")
    assert mini is not None
    amount = cost(mini, 1_000, 0)
    assert isinstance(amount, Decimal)
    assert amount == Decimal("0.00015")


def test_cost_with_output_and_cached_tokens_is_exact() -> None:
    mini = price("m", "0.15", "0.60", "0.075")
    # 600k fresh * 0.15 + 400k cached * 0.075 + 2M output * 0.60, per million
    assert cost(mini, 1_000_000, 2_000_000, 400_000) == Decimal("1.32")
    assert cost(mini, 1, 1, 1) == Decimal("0.000000675")


def test_cost_has_no_float_rounding() -> None:
    tenth = price("m", "0.1", "0.2")
    total = cost(tenth, 1, 0) + cost(tenth, 0, 1)
    assert total == Decimal("0.0000003")  # 0.1 + 0.2 would not be 0.3 in binary floats
    assert cost(price("m", "0.0028", "0.28"), 3, 7) == Decimal("0.0000019684")


def test_cost_of_nothing_is_zero() -> None:
    assert cost(price("m", "1", "1"), 0, 0) == 0


def test_cost_huge_counts_stay_exact() -> None:
    p = price("m", "0.075", "0.30", "0.01875")
    assert cost(p, 10**15, 10**15, 10**15 - 1) == Decimal("318750000.00000005625")


def test_cost_accepts_a_price_block_shape() -> None:
    assert cost(
        Spec(Decimal("2"), Decimal("4"), Decimal("1")), 1_000_000, 0, 500_000
    ) == 1 + Decimal("0.5")


def test_cost_rejects_cached_above_prompt() -> None:
    with pytest.raises(ValueError, match="cached_tokens"):
        cost(price("m", "1", "1"), 10, 0, 11)


@pytest.mark.parametrize("args", [(-1, 0, 0), (0, -1, 0), (0, 0, -1)])
def test_cost_rejects_negative_counts(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        cost(price("m", "1", "1"), *args)


@pytest.mark.parametrize("args", [(1.5, 0, 0), (True, 0, 0), (1, "2", 0), (1, 0, None)])
def test_cost_rejects_non_integer_counts(args: tuple[object, object, object]) -> None:
    with pytest.raises(TypeError):
        cost(price("m", "1", "1"), *args)  # type: ignore[arg-type]


# --- speed ------------------------------------------------------------------------------
