"""Helpers for the Telegram front-end tests: the shared fixtures (register this module with
`pytest_plugins`), run the bot, wait for a condition, read what it did."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.actions import Actions
from bot.alerts import AlertSettings
from bot.config import Settings
from bot.store import Store
from bot.telegram.bot import TelegramFrontend
from explainers.chart_service import ChartMaker
from explainers.service import Explainer
from tests.replay_helpers import Upstream
from tests.telegram_harness import Chat, CompatLayer, TelegramEmulator, User

POLL_INTERVAL = 0.02
TIMEOUT = 5.0
ALICE = User(5001, "Alice", "alice")
BOB = User(5002, "Bob", "bob")


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


@pytest.fixture
async def explainer(upstream: Upstream, settings: Settings) -> AsyncIterator[Explainer]:
    async with upstream.client(settings) as client:
        yield upstream.explainer(client, settings)


@pytest.fixture
def failures() -> Iterator[Failures]:
    """Errors the front-end logged; a test that expects some empties the list."""
    handler = Failures()
    logger = logging.getLogger("whydown.telegram")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == []


def admin_in(emulator: TelegramEmulator, chat: Chat, *admins: User) -> None:
    """Declare `chat`, with `admins` as its administrators and BOB as a plain member."""
    emulator.layer.add_chat(chat.to_api())
    for admin in admins:
        emulator.layer.set_member(chat.id, admin.to_api(), "administrator")
    emulator.layer.set_member(chat.id, BOB.to_api(), "member")


@asynccontextmanager
async def running(frontend: TelegramFrontend) -> AsyncIterator[TelegramFrontend]:
    """The front-end started as the runner starts it, stopped (updates in hand finished) after."""
    await frontend.start()
    try:
        yield frontend
    finally:
        await frontend.stop()


async def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until `condition()` holds; fail with `what` at the deadline."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(POLL_INTERVAL)  # poll interval, bounded by the deadline
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def notices(layer: CompatLayer) -> list[str | None]:
    """The notices the bot answered button presses with (None: answered without one)."""
    return [c.params.get("text") for c in layer.calls if c.method == "answerCallbackQuery"]


def command_lines(text: str) -> list[str]:
    """The lines of a reply that start with a command, up to the first colon."""
    return [line.split(":", 1)[0] for line in text.splitlines() if line.startswith("/")]


class Failures(logging.Handler):
    """Collects the front-end's error log records, to assert that handlers did not fail."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def make_frontend(
    emulator: TelegramEmulator,
    explainer: Explainer,
    store: Store,
    upstream: Upstream,
    settings: Settings,
    charts: ChartMaker | None,
) -> TelegramFrontend:
    """The real front-end wired to the emulator, the replayed upstream and a real store."""
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=AlertSettings(),
        charts=charts,
        clock=upstream.clock,
    )
    return TelegramFrontend(
        token=SecretStr(emulator.token),
        actions=actions,
        api_url=emulator.base_url,
        file_url=emulator.base_file_url,
        application_builder=emulator.application_builder(),
    )
