from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Gateway, Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream("primary")
    yield server
    server.close()


@pytest.fixture
def upstream2() -> Iterator[Upstream]:
    server = Upstream("secondary")
    yield server
    server.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway not yet started: write pipelines with ``gateway.write``, then ``start()``."""
    gw = Gateway(tmp_path)
    yield gw
    gw.stop()
