"""The package's layers point one way: core <- dsl <- providers, modules <- runtime <- api, app, cli.

Every import in stockyard/ is read with `ast` — at module level, inside functions and under
`if TYPE_CHECKING:` alike, since each is a dependency — and must point at its own layer or a
lower one. Within a layer, the packages listed as siblings must not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stockyard"

# Lowest first. Each entry: a top-level name under stockyard/ (package or module).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core", "exceptions"),  # shared by all, imports nothing of ours
    ("pricing", "store", "keys", "settings"),  # records and prices: no language, no requests
    ("dsl",),  # the language
    ("providers", "modules"),  # adapters and modules: siblings, never import each other
    ("runtime", "catalog"),  # the gateway, and the checker bound to this build's specs
    ("api", "web", "app", "server", "cli", "remote", "__main__", "__init__"),
)
SIBLINGS_APART = {frozenset({"providers", "modules"}), frozenset({"pricing", "store"})}
LEAVES = {"core", "exceptions"}  # import nothing of ours outside themselves

LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def top_of(module: str) -> str | None:
    """``stockyard.dsl.parser`` -> ``dsl``; None for a module outside the package."""
    parts = module.split(".")
    if parts[0] != "stockyard":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of ours in one file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from . import x, y` imports modules x and y; `from a import name` imports a.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((node.lineno, candidate if is_module(candidate) else target))
    return [(line, name) for line, name in found if top_of(name) is not None]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer() -> None:
    tops = {top_of(module_name(path)) for path in SOURCES}
    assert tops - LEVEL.keys() == set(), "add these to LAYERS in tests/test_layers.py"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_down(path: Path) -> None:
    source = top_of(module_name(path))
    assert source is not None
    wrong = []
    for line, target in imports_of(path):
        to = top_of(target)
        assert to is not None
        if to == source:
            continue
        if source in LEAVES:
            wrong.append(f"line {line}: {target} (`{source}` imports nothing of ours)")
        elif LEVEL[to] > LEVEL[source]:
            wrong.append(f"line {line}: {target} is a higher layer than `{source}`")
        elif frozenset({source, to}) in SIBLINGS_APART:
            wrong.append(f"line {line}: `{source}` and `{to}` must not import each other")
    assert not wrong, f"{path.relative_to(PACKAGE.parent)}:\n  " + "\n  ".join(wrong)


def test_the_checker_sees_an_upward_import() -> None:
    """The reader itself: a relative import from a lower layer is resolved and caught."""
    dsl_init = PACKAGE / "dsl" / "__init__.py"
    targets = {top_of(name) for _line, name in imports_of(dsl_init)}
    assert "core" in targets  # `from ..core.generation import …` resolved across packages
    assert not targets & {"modules", "providers", "runtime"}
