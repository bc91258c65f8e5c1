"""Pytest fixtures: the emulator process per module, a fresh bot token and layer per test.

Register them from a conftest with `pytest_plugins = ["tests.telegram_harness.fixtures"]`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import ClientSession

from .client import TelegramTestClient
from .layer import CompatLayer
from .process import EmulatorProcess
from .session import TelegramEmulator


@pytest.fixture(scope="module")
def telegram_emulator_process() -> Iterator[EmulatorProcess]:
    """The telegram-test-api server, started once per test module on a free loopback port."""
    with EmulatorProcess() as process:
        yield process


@pytest.fixture
async def telegram_emulator(
    telegram_emulator_process: EmulatorProcess,
) -> AsyncIterator[TelegramEmulator]:
    """A fresh bot token, a compatibility layer in this test's loop, and a user-side client.

    The emulator keys every update by bot token, so a new token per test means nothing one
    test sent or left unread can reach another.
    """
    # The emulator's getMe always answers id 666; the token's id part matches it.
    token = f"666:test-{secrets.token_hex(16)}"
    layer = CompatLayer(telegram_emulator_process.url)
    await layer.start()
    session = ClientSession()
    try:
        client = TelegramTestClient(telegram_emulator_process.url, token, layer, session)
        yield TelegramEmulator(token=token, layer=layer, client=client)
    finally:
        await session.close()
        await layer.close()
