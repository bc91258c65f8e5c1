"""Shared fixtures: every test starts from a clean process-level state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from explainers.sources import okx


@pytest.fixture(autouse=True)
def _fresh_contract_values() -> Iterator[None]:
    """OKX contract values are cached per process; tests that count requests need it empty."""
    okx.CONTRACT_VALUES.clear()
    yield
    okx.CONTRACT_VALUES.clear()
