"""Which route serves a request: built once per activated generation from its routes' model
patterns, so the compiled :class:`~stockyard.core.generation.Generation` stays pure data (and
``stockyard check``, which never routes a request, compiles no regex)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..core.generation import Generation, RouteSpec, glob_regex


def _model_test(route: RouteSpec) -> Callable[[str], object] | None:
    """A test of a model name against the route's patterns; None when it takes every model."""
    regex: re.Pattern[str] | None = glob_regex(route.models)
    return None if regex is None else regex.match


class Router:
    """Per path, the routes serving it in declaration order, each with its compiled model test."""

    __slots__ = ("_by_path",)

    def __init__(self, generation: Generation) -> None:
        tests: dict[str, Callable[[str], object] | None] = {}
        by_path: dict[str, tuple[tuple[RouteSpec, Callable[[str], object] | None], ...]] = {}
        for path, routes in generation.routes_by_path.items():
            entries = []
            for route in routes:
                if route.name not in tests:  # a route on several paths compiles once
                    tests[route.name] = _model_test(route)
                entries.append((route, tests[route.name]))
            by_path[path] = tuple(entries)
        self._by_path: Mapping[str, tuple[tuple[RouteSpec, Callable[[str], object] | None], ...]]
        self._by_path = MappingProxyType(by_path)

    def route_for(self, path: str, model: str) -> RouteSpec | None:
        """The first route, in declaration order, serving ``path`` whose patterns match ``model``."""
        for route, matches in self._by_path.get(path, ()):
            if matches is None or matches(model) is not None:
                return route
        return None
