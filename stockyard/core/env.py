"""Resolve ``env("NAME")`` references when a generation is put into service."""

from __future__ import annotations

import os

from .values import EnvRef


def resolve(value: str | EnvRef | None) -> str | None:
    if isinstance(value, EnvRef):
        return os.environ.get(value.name)
    return value
